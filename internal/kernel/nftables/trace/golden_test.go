package trace

import (
	"bytes"
	"flag"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
	"github.com/svcnat/svcnat/internal/linediff"
	traceview "github.com/svcnat/svcnat/internal/trace"
)

var update = flag.Bool("update", false, "rewrite the trace golden files")

// upstreamLocal are the addresses of kube-proxy's fake proxier (its tests'
// node), which render's golden cases use.
var upstreamLocal = []string{"127.0.0.1", "::1", "192.168.0.2", "192.168.1.2", "192.168.99.11", "2001:db8::1", "2001:db8:1::2"}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// hostOf renders cfg with svcnat's nftables renderer for a host with the
// addresses local, as the tracer is given it.
func hostOf(t *testing.T, cfg *config.Config, local []netip.Addr) Host {
	t.Helper()
	r, err := render.Renderer{}.Render(cfg, backend.RenderOptions{Node: cfg.Settings.Node, LocalAddresses: local})
	if err != nil {
		t.Fatal(err)
	}
	return Host{Rules: r.Rulesets, Local: local, Table: backend.NFTTable(cfg.Settings.ChainPrefix)}
}

// frontends are the packets worth tracing for a configuration: to every
// cluster IP from an outside client and from the node itself, to every
// external and load-balancer IP from an outside client (and one outside
// every source range), and to every node port on the node's address.
func frontends(cfg *config.Config) []backend.Packet {
	var out []backend.Packet
	pick := func(a netip.Addr, v4, v6 string) netip.Addr {
		if a.Is6() {
			return netip.MustParseAddr(v6)
		}
		return netip.MustParseAddr(v4)
	}
	client := func(a netip.Addr) netip.Addr { return pick(a, "203.0.113.7", "2001:db8:99::7") }
	node := func(a netip.Addr) netip.Addr { return pick(a, "192.168.0.2", "2001:db8::1") }
	for _, s := range cfg.Services {
		for _, p := range s.Ports {
			proto := strings.ToLower(p.Protocol)
			for _, ip := range s.ClusterIPs {
				out = append(out, backend.Packet{Src: client(ip), Dst: ip, Proto: proto, DPort: p.Port, Origin: backend.OriginExternal},
					backend.Packet{Src: node(ip), Dst: ip, Proto: proto, DPort: p.Port, Origin: backend.OriginLocal})
			}
			for _, ip := range append(append([]netip.Addr(nil), s.ExternalIPs...), s.LoadBalancerIPs...) {
				out = append(out, backend.Packet{Src: client(ip), Dst: ip, Proto: proto, DPort: p.Port, Origin: backend.OriginExternal})
				if len(s.LoadBalancerSourceRanges) > 0 {
					out = append(out, backend.Packet{Src: pick(ip, "198.51.100.9", "2001:db8:98::9"), Dst: ip, Proto: proto, DPort: p.Port, Origin: backend.OriginExternal})
				}
			}
			if p.NodePort != 0 {
				for _, ip := range s.ClusterIPs {
					out = append(out, backend.Packet{Src: client(ip), Dst: node(ip), Proto: proto, DPort: p.NodePort, Origin: backend.OriginExternal})
				}
			}
		}
	}
	return out
}

// TestGolden traces every frontend of every configuration of the nftables
// renderer's golden cases (kube-proxy's own, as HCL) and compares the
// whole text with testdata/<case>.trace; go test
// ./internal/kernel/nftables/trace -update rewrites them. Every trace is
// also checked: a DNAT goes to an endpoint of the service addressed, the
// unconditional paths' probabilities sum to 1, and no rule is left
// unevaluated.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("../render/testdata/hcl/*.hcl")
	if len(files) < 5 {
		t.Fatalf("golden configurations: %v", files)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hcl")
		t.Run(name, func(t *testing.T) {
			cfg, diags := config.Load(f)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			h := hostOf(t, cfg, addrs(upstreamLocal...))
			var b bytes.Buffer
			for _, p := range frontends(cfg) {
				res, err := h.Trace(p)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				check(t, cfg, res)
				traceview.Write(&b, res)
				b.WriteString("\n")
			}
			golden := filepath.Join("testdata", name+".trace")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/kernel/nftables/trace -update)", err)
			}
			if !bytes.Equal(want, b.Bytes()) {
				t.Errorf("%s differs from the trace (go test ./internal/kernel/nftables/trace -update rewrites it):\n%s",
					golden, linediff.Unified(golden, string(want), b.String()))
			}
		})
	}
}

// check asserts what every trace must hold.
func check(t *testing.T, cfg *config.Config, res *backend.Result) {
	t.Helper()
	endpoints := map[netip.Addr]bool{}
	for _, s := range cfg.Services {
		mine := false
		for _, ip := range append(append(append([]netip.Addr(nil), s.ClusterIPs...), s.ExternalIPs...), s.LoadBalancerIPs...) {
			mine = mine || ip == res.Packet.Dst
		}
		for _, p := range s.Ports {
			mine = mine || p.NodePort != 0 && p.NodePort == res.Packet.DPort && strings.EqualFold(p.Protocol, res.Packet.Proto)
		}
		if mine {
			for _, e := range s.Endpoints {
				endpoints[e.Address] = true
			}
		}
	}
	total := 0.0
	for _, p := range res.Paths {
		if len(p.Unknown) > 0 {
			t.Errorf("%s: rules not evaluated: %v", res.Packet, p.Unknown)
		}
		if p.Verdict == backend.DNAT && !endpoints[p.Dst.Addr()] {
			t.Errorf("%s: DNAT to %s, no endpoint of the service", res.Packet, p.Dst)
		}
		if p.Condition == "" {
			total += p.Probability
		}
	}
	if math.Abs(total-1) > 1e-6 {
		t.Errorf("%s: the unconditional paths' probabilities sum to %v", res.Packet, total)
	}
}

func text(res *backend.Result) string {
	var b strings.Builder
	traceview.Write(&b, res)
	return b.String()
}
