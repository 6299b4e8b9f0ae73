package trace

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
	traceview "github.com/svcnat/svcnat/internal/trace"
)

var update = flag.Bool("update", false, "rewrite the trace golden files")

// upstreamLocal are the addresses of kube-proxy's fake proxier (its tests'
// node), which render's golden cases use.
var upstreamLocal = []string{"127.0.0.1", "::1", "192.168.0.2", "192.168.1.2", "192.168.99.11", "2001:db8::1", "2001:db8:1::2"}

// frontends are the packets worth tracing for a configuration: to every
// cluster IP, external IP and load-balancer IP from an outside client, to
// every cluster IP from the node itself, and to every node port on the
// node's address.
func frontends(cfg *config.Config) []backend.Packet {
	var out []backend.Packet
	client := func(a netip.Addr) netip.Addr {
		if a.Is6() {
			return netip.MustParseAddr("2001:db8:99::7")
		}
		return netip.MustParseAddr("203.0.113.7")
	}
	node := func(a netip.Addr) netip.Addr {
		if a.Is6() {
			return netip.MustParseAddr("2001:db8::1")
		}
		return netip.MustParseAddr("192.168.0.2")
	}
	for _, s := range cfg.Services {
		for _, p := range s.Ports {
			proto := strings.ToLower(p.Protocol)
			for _, ip := range s.ClusterIPs {
				out = append(out, backend.Packet{Src: client(ip), Dst: ip, Proto: proto, DPort: p.Port, Origin: backend.OriginExternal},
					backend.Packet{Src: node(ip), Dst: ip, Proto: proto, DPort: p.Port, Origin: backend.OriginLocal})
			}
			for _, ip := range append(append([]netip.Addr(nil), s.ExternalIPs...), s.LoadBalancerIPs...) {
				out = append(out, backend.Packet{Src: client(ip), Dst: ip, Proto: proto, DPort: p.Port, Origin: backend.OriginExternal})
				if len(s.LoadBalancerSourceRanges) > 0 && ip.Is4() {
					// a client outside every source range
					out = append(out, backend.Packet{Src: netip.MustParseAddr("198.51.100.9"), Dst: ip, Proto: proto, DPort: p.Port, Origin: backend.OriginExternal})
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

// TestGolden traces every frontend of every golden configuration (kube-proxy's
// own cases, as HCL) and compares the whole text with
// testdata/<case>.trace; go test ./internal/kernel/iptables/trace -update rewrites them. Every trace
// is also checked: a DNAT goes to an endpoint of the service addressed, the
// unconditional paths' probabilities sum to 1, and no rule is left
// unevaluated.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("../render/testdata/hcl/*.hcl")
	if len(files) < 10 {
		t.Fatalf("golden configurations: %v", files)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hcl")
		t.Run(name, func(t *testing.T) {
			cfg, diags := config.Load(f)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var local []netip.Addr
			for _, a := range upstreamLocal {
				local = append(local, netip.MustParseAddr(a))
			}
			r, err := render.Render(cfg, render.Options{Node: cfg.Settings.Node, LocalAddresses: local, RandomFully: true})
			if err != nil {
				t.Fatal(err)
			}
			h := Host{Rules: r.Rulesets, Local: local}
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
				t.Fatalf("%v (run go test ./internal/kernel/iptables/trace -update)", err)
			}
			if !bytes.Equal(want, b.Bytes()) {
				t.Errorf("%s differs from the trace (go test ./internal/kernel/iptables/trace -update rewrites it):\n%s", golden, lineDiff(string(want), b.String()))
			}
		})
	}
}

// check asserts what every trace must hold.
func check(t *testing.T, cfg *config.Config, res *backend.Result) {
	t.Helper()
	endpoints := map[netip.Addr]bool{}
	addressed := false
	for _, s := range cfg.Services {
		mine := false
		for _, ip := range append(append(append([]netip.Addr(nil), s.ClusterIPs...), s.ExternalIPs...), s.LoadBalancerIPs...) {
			mine = mine || ip == res.Packet.Dst
		}
		for _, p := range s.Ports {
			mine = mine || p.NodePort != 0 && p.NodePort == res.Packet.DPort && strings.EqualFold(p.Protocol, res.Packet.Proto)
		}
		if !mine {
			continue
		}
		addressed = true
		for _, e := range s.Endpoints {
			endpoints[e.Address] = true
		}
	}
	if !addressed {
		t.Fatalf("%s addresses no service", res.Packet)
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

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, a, c)
			if b.Len() > 4000 {
				break
			}
		}
	}
	return b.String()
}
