package planner

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

func parse(t *testing.T, s string) *rules.Ruleset {
	t.Helper()
	rs, err := rules.ParseSave(rules.IPv4, strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

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

func TestPlanEmptyWhenEqual(t *testing.T) {
	rs := parse(t, live)
	p := New("SN", "nft", map[rules.Family]*rules.Ruleset{rules.IPv4: rs.Owned("SN")}, map[rules.Family]*rules.Ruleset{rules.IPv4: rs})
	if !p.Empty() {
		t.Fatalf("plan not empty: %+v", p.Changes)
	}
}

func TestPlanEndpointChange(t *testing.T) {
	desired := strings.NewReplacer(
		":SN-SEP-A2 - [0:0]", ":SN-SEP-A3 - [0:0]",
		`-A SN-SVC-AAA -m comment --comment "default/web -> 10.64.1.3:80" -j SN-SEP-A2`, `-A SN-SVC-AAA -m comment --comment "default/web -> 10.64.1.4:80" -j SN-SEP-A3`,
		`-A SN-SEP-A2 -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.64.1.3:80`, `-A SN-SEP-A3 -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.64.1.4:80`,
	).Replace(live)
	p := New("SN", "nft", map[rules.Family]*rules.Ruleset{rules.IPv4: parse(t, desired).Owned("SN")},
		map[rules.Family]*rules.Ruleset{rules.IPv4: parse(t, live)})
	s := p.Summary()
	if s.Add != 1 || s.Change != 1 || s.Remove != 1 || s.RulesAdded != 2 || s.RulesRemoved != 2 {
		t.Fatalf("summary %+v, changes %+v", s, p.Changes)
	}
	svcs := Describe(p).Services
	if len(svcs) != 1 || svcs[0].Name != "default/web" || svcs[0].Action != Update {
		t.Fatalf("services %+v", svcs)
	}
	want := []Detail{{SubjectEndpoint, "10.64.1.3:80", Removed}, {SubjectEndpoint, "10.64.1.4:80", Added}}
	if !slices.Equal(sortedDetails(svcs[0].Details), want) {
		t.Fatalf("details %+v, want %+v", svcs[0].Details, want)
	}
}

func TestPlanRemovesEverythingWhenNothingDesired(t *testing.T) {
	p := New("SN", "nft", nil, map[rules.Family]*rules.Ruleset{rules.IPv4: parse(t, live)})
	s := p.Summary()
	if s.Remove != 4 || s.Change != 2 || s.Add != 0 {
		t.Fatalf("summary %+v", s)
	}
	if svcs := Describe(p).Services; len(svcs) != 1 || svcs[0].Action != Delete || svcs[0].Details != nil {
		t.Fatalf("services %+v", svcs)
	}
}

func TestPlanFileRoundTrip(t *testing.T) {
	p := New("SN", "legacy", nil, map[rules.Family]*rules.Ruleset{rules.IPv4: parse(t, live)})
	data, err := MarshalPlan(p, "sha256:cfg")
	if err != nil {
		t.Fatal(err)
	}
	q, digest, err := UnmarshalPlan(data)
	if err != nil {
		t.Fatal(err)
	}
	if digest != "sha256:cfg" || q.Fingerprint() != p.Fingerprint() || q.Summary() != p.Summary() {
		t.Fatalf("round trip changed the plan: %+v vs %+v", q.Summary(), p.Summary())
	}
	tampered := strings.Replace(string(data), "10.64.1.2:80", "10.64.9.9:80", 1)
	if _, _, err := UnmarshalPlan([]byte(tampered)); err == nil {
		t.Fatal("a tampered live snapshot was accepted")
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
	p := New("SN", "nft", map[rules.Family]*rules.Ruleset{rules.IPv4: parse(t, desired)}, map[rules.Family]*rules.Ruleset{rules.IPv4: parse(t, udp)})
	got := StaleUDP(p)
	want := []StaleFlow{
		{Family: rules.IPv4, Service: "kube-system/dns", NodePort: 30053, Endpoint: netip.MustParseAddr("10.64.2.2")},
		{Family: rules.IPv4, Service: "kube-system/dns", VIP: netip.MustParseAddr("10.32.0.10"), Port: 53, Endpoint: netip.MustParseAddr("10.64.2.2")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("flow %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if again := StaleUDP(New("SN", "nft", map[rules.Family]*rules.Ruleset{rules.IPv4: parse(t, udp)}, map[rules.Family]*rules.Ruleset{rules.IPv4: parse(t, udp)})); len(again) != 0 {
		t.Fatalf("no change, yet stale flows %+v", again)
	}
}

func TestTakeGroupsOwnedRulesByService(t *testing.T) {
	inv := Take(map[rules.Family]*rules.Ruleset{rules.IPv4: parse(t, live)}, "SN")
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

// sortedDetails orders details by subject and value, for comparisons.
func sortedDetails(ds []Detail) []Detail {
	out := slices.Clone(ds)
	slices.SortFunc(out, func(a, b Detail) int {
		if a.Subject != b.Subject {
			return int(a.Subject) - int(b.Subject)
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out
}
