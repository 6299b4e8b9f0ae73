package describe

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/planner"
)

func parse(t *testing.T, s string) *backend.Ruleset {
	t.Helper()
	rs, err := rules.ParseSave(backend.IPv4, strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// live is a small dump: one service of two endpoints, and a foreign chain.
const live = `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:SN-SERVICES - [0:0]
:SN-SVC-AAA - [0:0]
:SN-SEP-A1 - [0:0]
:SN-SEP-A2 - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A PREROUTING -m comment --comment "svcnat service portals" -j SN-SERVICES
-A OUTPUT -m comment --comment "svcnat service portals" -j SN-SERVICES
-A DOCKER -i docker0 -j RETURN
-A SN-SERVICES -d 10.0.0.1/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j SN-SVC-AAA
-A SN-SVC-AAA -m comment --comment "default/web -> 10.64.1.2:80" -m statistic --mode random --probability 0.50000000000 -j SN-SEP-A1
-A SN-SVC-AAA -m comment --comment "default/web -> 10.64.1.3:80" -j SN-SEP-A2
-A SN-SEP-A1 -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.64.1.2:80
-A SN-SEP-A2 -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.64.1.3:80
COMMIT
`

// describePlan is the Describer's description of p.
func describePlan(p *planner.Plan) *backend.Description { return Describer{}.Describe(p.Planned()) }

func TestDescribeEndpointChange(t *testing.T) {
	desired := strings.NewReplacer(
		":SN-SEP-A2 - [0:0]", ":SN-SEP-A3 - [0:0]",
		`-A SN-SVC-AAA -m comment --comment "default/web -> 10.64.1.3:80" -j SN-SEP-A2`, `-A SN-SVC-AAA -m comment --comment "default/web -> 10.64.1.4:80" -j SN-SEP-A3`,
		`-A SN-SEP-A2 -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.64.1.3:80`, `-A SN-SEP-A3 -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.64.1.4:80`,
	).Replace(live)
	p := planner.New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, desired).Owned("SN")},
		map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, live)})
	svcs := describePlan(p).Services
	if len(svcs) != 1 || svcs[0].Name != "default/web" || svcs[0].Action != backend.Update {
		t.Fatalf("services %+v", svcs)
	}
	want := []backend.Detail{{Subject: backend.SubjectEndpoint, Value: "10.64.1.3:80", Change: backend.DetailRemoved}, {Subject: backend.SubjectEndpoint, Value: "10.64.1.4:80", Change: backend.DetailAdded}}
	if !slices.Equal(sortedDetails(svcs[0].Details), want) {
		t.Fatalf("details %+v, want %+v", svcs[0].Details, want)
	}
}

func TestDescribeRemovesEverythingWhenNothingDesired(t *testing.T) {
	p := planner.New("SN", "nft", nil, map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, live)})
	if svcs := describePlan(p).Services; len(svcs) != 1 || svcs[0].Action != backend.Delete || svcs[0].Details != nil {
		t.Fatalf("services %+v", svcs)
	}
}

func TestStaleUDPNamesRemovedEndpointsOnly(t *testing.T) {
	const udp = `*nat
:SN-SERVICES - [0:0]
:SN-NODEPORTS - [0:0]
:SN-SVC-D - [0:0]
:SN-SEP-D1 - [0:0]
:SN-SEP-D2 - [0:0]
-A SN-SERVICES -d 10.32.0.10/32 -p udp -m comment --comment "kube-system/dns:dns cluster IP" -m udp --dport 53 -j SN-SVC-D
-A SN-NODEPORTS -p udp -m comment --comment "kube-system/dns:dns" -m udp --dport 30053 -j SN-SVC-D
-A SN-SVC-D -m comment --comment "kube-system/dns:dns -> 10.64.1.2:53" -m statistic --mode random --probability 0.50000000000 -j SN-SEP-D1
-A SN-SVC-D -m comment --comment "kube-system/dns:dns -> 10.64.2.2:53" -j SN-SEP-D2
-A SN-SEP-D1 -p udp -m comment --comment "kube-system/dns:dns" -m udp -j DNAT --to-destination 10.64.1.2:53
-A SN-SEP-D2 -p udp -m comment --comment "kube-system/dns:dns" -m udp -j DNAT --to-destination 10.64.2.2:53
COMMIT
`
	desired := strings.NewReplacer(
		":SN-SEP-D2 - [0:0]\n", "",
		`-A SN-SVC-D -m comment --comment "kube-system/dns:dns -> 10.64.1.2:53" -m statistic --mode random --probability 0.50000000000 -j SN-SEP-D1`, `-A SN-SVC-D -m comment --comment "kube-system/dns:dns -> 10.64.1.2:53" -j SN-SEP-D1`,
		`-A SN-SVC-D -m comment --comment "kube-system/dns:dns -> 10.64.2.2:53" -j SN-SEP-D2`+"\n", "",
		`-A SN-SEP-D2 -p udp -m comment --comment "kube-system/dns:dns" -m udp -j DNAT --to-destination 10.64.2.2:53`+"\n", "",
	).Replace(udp)
	p := planner.New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, desired)}, map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, udp)})
	got := (Describer{}).StaleUDP(p.Planned())
	want := []backend.StaleFlow{
		{Family: backend.IPv4, Service: "kube-system/dns", NodePort: 30053, Endpoint: netip.MustParseAddr("10.64.2.2")},
		{Family: backend.IPv4, Service: "kube-system/dns", VIP: netip.MustParseAddr("10.32.0.10"), Port: 53, Endpoint: netip.MustParseAddr("10.64.2.2")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("flow %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	same := planner.New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, udp)}, map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, udp)})
	if again := (Describer{}).StaleUDP(same.Planned()); len(again) != 0 {
		t.Fatalf("no change, yet stale flows %+v", again)
	}
}

func TestTakeGroupsOwnedRulesByService(t *testing.T) {
	inv := (Describer{}).Inventory("SN", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, live)})
	if inv.Chains != 4 || inv.Rules != 7 {
		t.Fatalf("inventory counts %d chains, %d rules", inv.Chains, inv.Rules)
	}
	if got := inv.Names(); len(got) != 1 || got[0] != "default/web" || len(inv.Services["default/web"]) != 5 {
		t.Fatalf("services %v", inv.Services)
	}
	if len(inv.Shared) != 2 { // the PREROUTING and OUTPUT jumps
		t.Fatalf("shared %v", inv.Shared)
	}
}

// TestCheckDesiredAdmitsWhatRenderWrites: the check must never refuse
// what svcnat itself writes (reconcile applies every plan it makes through
// it): every golden of render, kube-proxy's prefix and svcnat's, IPv4 and
// IPv6, passes.
func TestCheckDesiredAdmitsWhatRenderWrites(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join("..", "render", "testdata", "*.golden"))
	if err != nil || len(goldens) < 10 {
		t.Fatalf("goldens: %v, %d", err, len(goldens))
	}
	for _, g := range goldens {
		data, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		fam, prefix := backend.IPv4, "KUBE"
		if strings.HasSuffix(g, ".v6.golden") {
			fam = backend.IPv6
		}
		if !strings.Contains(string(data), ":KUBE-SERVICES ") {
			prefix = "SVCNAT"
		}
		rs, err := rules.ParseSave(fam, strings.NewReader(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		if err := (Describer{}).CheckDesired(prefix, map[backend.Family]*backend.Ruleset{fam: rs}); err != nil {
			t.Errorf("%s: %v", filepath.Base(g), err)
		}
	}
}

// BenchmarkCheckDesired10k checks the rules of 10,000 services
// (bench.Files), which every saved plan and every reconcile apply pays.
func BenchmarkCheckDesired10k(b *testing.B) {
	dir := b.TempDir()
	if err := bench.Write(dir, bench.FromEnv(b)); err != nil {
		b.Fatal(err)
	}
	cfg, diags := config.Load(dir)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	res, err := render.Render(cfg, render.Options{Node: bench.Node, RandomFully: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := (Describer{}).CheckDesired(cfg.Settings.ChainPrefix, res.Rulesets); err != nil {
			b.Fatal(err)
		}
	}
}

// sortedDetails orders details by subject and value, for comparisons.
func sortedDetails(ds []backend.Detail) []backend.Detail {
	out := slices.Clone(ds)
	slices.SortFunc(out, func(a, b backend.Detail) int {
		if a.Subject != b.Subject {
			return int(a.Subject) - int(b.Subject)
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out
}
