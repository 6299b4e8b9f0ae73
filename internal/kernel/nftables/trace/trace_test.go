package trace

import (
	"bytes"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
	traceview "github.com/svcnat/svcnat/internal/trace"
)

func overallHost(t *testing.T) Host {
	t.Helper()
	cfg, diags := config.Load("../render/testdata/hcl/overall.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return upstreamHostOf(t, cfg)
}

func mustTrace(t *testing.T, h Host, src, dst string, port int, origin backend.Origin) *backend.Result {
	t.Helper()
	res, err := h.Trace(backend.Packet{Src: addrs(src)[0], Dst: addrs(dst)[0], Proto: "tcp", DPort: port, Origin: origin})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestDefaultTableIsRenders(t *testing.T) {
	if DefaultTable != render.DefaultTable {
		t.Fatalf("DefaultTable %q, render's %q", DefaultTable, render.DefaultTable)
	}
}

// ClientIP affinity: a client with affinity goes back to its endpoint (a
// conditional path, the endpoint and the update's timeout said), any
// other is split by numgen; both record the client in @affinity.
func TestAffinityIsAConditionalPath(t *testing.T) {
	res := mustTrace(t, overallHost(t), client, "5.6.7.8", 80, backend.OriginExternal)
	out := text(res)
	if len(res.Paths) != 2 {
		t.Fatalf("%d paths:\n%s", len(res.Paths), out)
	}
	for _, want := range []string{
		"path 2 (if the client has affinity to 10.180.0.3:80, recorded within 3h):",
		"DNAT 10.180.0.3:80, records the client in @affinity",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

// withForeign adds to h's IPv4 rules a table of another owner: its base
// chains are listed where the packet crosses them, not evaluated.
func TestOtherTablesAreListedNotEvaluated(t *testing.T) {
	h := overallHost(t)
	rs := h.Rules[backend.IPv4]
	fw := rs.EnsureTable("filter")
	fw.Chains = append(fw.Chains,
		&backend.Chain{Name: "input", Policy: "type filter hook input priority filter ; policy drop ;"},
		&backend.Chain{Name: "forward", Policy: "type filter hook forward priority 0 ; policy drop ;",
			Rules: []backend.Rule{backend.NFTRuleOf("forward", "ct state established,related accept")}},
		&backend.Chain{Name: "helper"})
	res := mustTrace(t, h, client, "172.30.0.41", 80, backend.OriginExternal)
	p := res.Paths[0]
	want := "ip filter forward: base chain of another table (type filter hook forward priority 0 ; policy drop ;), not evaluated"
	if p.Verdict != backend.DNAT || len(p.Unknown) != 1 || p.Unknown[0] != want {
		t.Fatalf("not evaluated %q, want [%q]:\n%s", p.Unknown, want, text(res))
	}
	// Delivered locally, the packet crosses input instead.
	res = mustTrace(t, h, client, nodeIP, 22, backend.OriginExternal)
	if u := res.Paths[0].Unknown; len(u) != 1 || !strings.HasPrefix(u[0], "ip filter input: ") {
		t.Fatalf("%s", text(res))
	}
}

// A rule trace cannot evaluate is listed with its table and why, taken
// as not matching: the rules after it still run.
func TestUnevaluatedRulesAreListed(t *testing.T) {
	h := overallHost(t)
	svc := h.Rules[backend.IPv4].Table("svcnat").Chain("services")
	svc.Rules = append([]backend.Rule{
		backend.NFTRuleOf("services", "meta skuid 0 drop"),
		backend.NFTRuleOf("services", "ip daddr 172.30.0.41 limit rate 1/second drop"),
		backend.NFTRuleOf("services", "ip daddr 172.30.0.41 tcp dport { 1, 2 } drop"),
		backend.NFTRuleOf("services", "ip saddr . ip daddr { 203.0.113.2 . 172.30.0.41 } jump nowhere"),
	}, svc.Rules...)
	res := mustTrace(t, h, client, "172.30.0.41", 80, backend.OriginExternal)
	p := res.Paths[0]
	want := []string{
		"ip svcnat rule services meta skuid 0 drop (meta skuid is not evaluated)",
		"ip svcnat rule services ip daddr 172.30.0.41 limit rate 1/second drop (limit is not evaluated)",
		"ip svcnat rule services ip saddr . ip daddr { 203.0.113.2 . 172.30.0.41 } jump nowhere (jump to nowhere, which is no chain of the table)",
	}
	if p.Verdict != backend.DNAT || strings.Join(p.Unknown, "\n") != strings.Join(want, "\n") {
		t.Fatalf("not evaluated:\n%s\nwant:\n%s\n%s", strings.Join(p.Unknown, "\n"), strings.Join(want, "\n"), text(res))
	}
}

// A base chain's drop policy decides when no rule ends the packet.
func TestPolicyDrop(t *testing.T) {
	h := overallHost(t)
	c := h.Rules[backend.IPv4].Table("svcnat").Chain("filter-input")
	c.Policy = "type filter hook input priority 0 ; policy drop ;"
	res := mustTrace(t, h, client, nodeIP, 22, backend.OriginExternal)
	p := res.Paths[0]
	if p.Verdict != backend.Drop || traceview.DecidedBy(p) != "ip svcnat filter-input policy drop" {
		t.Fatalf("%s", text(res))
	}
}

// A jump loop is followed MaxJumpDepth deep, then cut.
func TestJumpLoopCutsThePath(t *testing.T) {
	rs := &backend.Ruleset{Family: backend.IPv4, Syntax: backend.NFTables}
	tb := rs.EnsureTable("svcnat")
	tb.Chains = []*backend.Chain{
		{Name: "in", Policy: "type filter hook input priority 0 ;", Rules: []backend.Rule{backend.NFTRuleOf("in", "jump a")}},
		{Name: "a", Rules: []backend.Rule{backend.NFTRuleOf("a", "jump b")}},
		{Name: "b", Rules: []backend.Rule{backend.NFTRuleOf("b", "jump a")}},
	}
	h := Host{Rules: map[backend.Family]*backend.Ruleset{backend.IPv4: rs}, Local: addrs(nodeIP)}
	res := mustTrace(t, h, client, nodeIP, 22, backend.OriginExternal)
	if p := res.Paths[0]; p.Cut == nil || p.Verdict != "" {
		t.Fatalf("%+v", p)
	}
}

// A packet the host sends to one of its own addresses comes back in over
// lo through input (not through nat), where svcnat rejects a node port
// without endpoints.
func TestLocalToLocalCrossesInput(t *testing.T) {
	h := upstreamHost(t, fakeSettings+`
service "ns1/empty" {
  type        = "NodePort"
  cluster_ips = ["172.30.0.70"]
  port {
    port      = 80
    node_port = 30090
  }
}`)
	res := mustTrace(t, h, nodeIP, nodeIP, 30090, backend.OriginLocal)
	out := text(res)
	if p := res.Paths[0]; p.Verdict != backend.Reject || p.Hops[len(p.Hops)-1].Hook != "INPUT" ||
		!strings.Contains(out, "  back in over lo\n") || strings.Contains(out[strings.Index(out, "back in"):], "nat-") {
		t.Fatalf("%s", out)
	}
}

func TestGraph(t *testing.T) {
	h := overallHost(t)
	g, err := h.Graph(backend.IPv4, "ns5/svc5")
	if err != nil {
		t.Fatal(err)
	}
	var dot bytes.Buffer
	traceview.WriteDOT(&dot, g)
	for _, want := range []string{`label="prerouting"`, `label="nat-prerouting"`, `label="services"`,
		`label="DNAT 10.180.0.3:80"`, `label="DROP"`, "affinity", "p=1", "5.6.7.8 . tcp . 80", "tcp . 3002"} {
		if !strings.Contains(dot.String(), want) {
			t.Errorf("DOT lacks %s:\n%s", want, dot.String())
		}
	}
	for _, other := range []string{"ns1/svc1", "10.180.0.1", "172.30.0.41", "reject"} {
		if strings.Contains(dot.String(), other) {
			t.Errorf("the graph of ns5/svc5 shows %s:\n%s", other, dot.String())
		}
	}
	all, err := h.Graph(backend.IPv4, "")
	if err != nil || len(all.Edges) <= len(g.Edges) {
		t.Fatalf("whole graph: %v, %d edges", err, len(all.Edges))
	}
	if _, err := h.Graph(backend.IPv4, "no/such"); err == nil {
		t.Error("a graph of a service that does not exist")
	}
	if _, err := (Host{}).Graph(backend.IPv6, ""); err == nil {
		t.Error("a graph of a family without rules")
	}
}

func TestServiceOf(t *testing.T) {
	for name, want := range map[string]string{
		"service-ULMVA6XW-ns1/svc1/tcp/p80":                     "ns1/svc1",
		"endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80":     "ns5/svc5",
		"affinity-I63UTAHF-ns1/dual/tcp/https__fd00.10..61/443": "ns1/dual",
		"service-PE3FRDCC-unnamed/tcp/":                         "unnamed",
		"services":                                              "", "service-ips": "", "reject-chain": "",
	} {
		if got := ServiceOf(name); got != want {
			t.Errorf("ServiceOf(%q) = %q, want %q", name, got, want)
		}
	}
}
