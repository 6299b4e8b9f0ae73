package trace

import (
	"bytes"
	"math"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
	traceview "github.com/svcnat/svcnat/internal/trace"
)

// host renders the configuration files in dir for node, with the host's
// addresses.
func host(t *testing.T, dir, node string, local ...string) Host {
	t.Helper()
	cfg, diags := config.Load(dir)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var addrs []netip.Addr
	for _, a := range local {
		addrs = append(addrs, netip.MustParseAddr(a))
	}
	res, err := render.Render(cfg, render.Options{Node: node, LocalAddresses: addrs, RandomFully: true})
	if err != nil {
		t.Fatal(err)
	}
	return Host{Rules: res.Rulesets, Local: addrs}
}

func packet(src, dst, proto string, port int, origin backend.Origin) backend.Packet {
	return backend.Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: proto, DPort: port, Origin: origin}
}

func TestExampleClusterIP(t *testing.T) {
	h := host(t, "../../../../examples", "node1", "192.0.2.1", "10.64.1.1")
	res, err := h.Trace(packet("192.0.2.2", "10.32.0.61", "tcp", 80, backend.OriginExternal))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	traceview.Write(&b, res)
	t.Log(b.String())
	total := 0.0
	dst := map[string]bool{}
	for _, p := range res.Paths {
		if p.Verdict != backend.DNAT || !p.Marked || p.Masquerade == "" || len(p.Unknown) > 0 {
			t.Errorf("path %+v", p)
		}
		total += p.Probability
		dst[p.Dst.String()] = true
	}
	if math.Abs(total-1) > 1e-9 || len(dst) != 3 || !dst["10.64.3.2:80"] {
		t.Fatalf("total %v, destinations %v", total, dst)
	}
}

func TestGraph(t *testing.T) {
	h := host(t, "../../../../examples", "node1", "192.0.2.1")
	h.Prefix = "SVCNAT"
	g, err := h.Graph(backend.IPv4, "default/nginx")
	if err != nil {
		t.Fatal(err)
	}
	var dot, mm bytes.Buffer
	traceview.WriteDOT(&dot, g)
	traceview.WriteMermaid(&mm, g)
	for _, want := range []string{`label="nat PREROUTING"`, `label="DNAT 10.64.1.2:80"`, `label="tcp/30080"`, "p=0.333"} {
		if !strings.Contains(dot.String(), want) {
			t.Errorf("DOT lacks %s:\n%s", want, dot.String())
		}
	}
	if strings.Contains(dot.String(), "10.32.0.10") {
		t.Errorf("the graph of default/nginx shows kube-system/dns:\n%s", dot.String())
	}
	if !strings.HasPrefix(mm.String(), "flowchart LR\n") || !strings.Contains(mm.String(), `(["DNAT 10.64.1.2:80"])`) {
		t.Errorf("Mermaid:\n%s", mm.String())
	}
	if _, err := h.Graph(backend.IPv4, "no/such"); err == nil {
		t.Error("a graph of a service that does not exist")
	}
	// Graphviz renders it, where it is installed (make test installs it).
	if dotBin, err := exec.LookPath("dot"); err == nil {
		cmd := exec.Command(dotBin, "-Tsvg")
		cmd.Stdin = &dot
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("<svg")) {
			t.Fatalf("dot -Tsvg: %v\n%.500s", err, out)
		}
	}
}

// A built-in chain's DROP policy (Docker sets FORWARD's) decides when no
// rule accepts: the path says so.
func TestPolicyDrop(t *testing.T) {
	h := host(t, "../../../../examples", "node1", "192.0.2.1")
	h.Rules[backend.IPv4].Tables[0].Chains[1].Policy = "DROP" // filter FORWARD
	if c := h.Rules[backend.IPv4].Tables[0].Chains[1]; c.Name != "FORWARD" {
		t.Fatalf("chain %s", c.Name)
	}
	// Not marked for masquerade (a source inside cluster_cidrs), so
	// SVCNAT-FORWARD does not accept it.
	res, err := h.Trace(packet("10.64.9.9", "10.32.0.61", "tcp", 80, backend.OriginExternal))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Paths {
		if p.Verdict != backend.Drop || traceview.DecidedBy(p) != "filter FORWARD policy DROP" {
			t.Fatalf("%+v", p)
		}
	}
}
