package describe

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
)

// largeUDP is a large-cluster-style dump (as render writes one above 1000
// endpoints per family): the SEP rules and the SVC/SVL "->" rules carry no
// comment, and the SVC chain has no cluster-CIDR masquerade rule, so it has
// no comment of its own either. Only SERVICES, NODEPORTS and EXT name the
// service.
const largeUDP = `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:SN-SERVICES - [0:0]
:SN-NODEPORTS - [0:0]
:SN-MARK-MASQ - [0:0]
:SN-SVC-D - [0:0]
:SN-EXT-D - [0:0]
:SN-SVL-D - [0:0]
:SN-SEP-D1 - [0:0]
:SN-SEP-D2 - [0:0]
-A PREROUTING -m comment --comment "svcnat service portals" -j SN-SERVICES
-A OUTPUT -m comment --comment "svcnat service portals" -j SN-SERVICES
-A SN-SERVICES -d 10.32.0.10/32 -p udp -m comment --comment "kube-system/dns:dns cluster IP" -m udp --dport 53 -j SN-SVC-D
-A SN-SERVICES -m comment --comment "svcnat service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j SN-NODEPORTS
-A SN-NODEPORTS -p udp -m comment --comment "kube-system/dns:dns" -m udp --dport 30053 -j SN-EXT-D
-A SN-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A SN-SVC-D -m statistic --mode random --probability 0.50000000000 -j SN-SEP-D1
-A SN-SVC-D -j SN-SEP-D2
-A SN-EXT-D -m comment --comment "masquerade LOCAL traffic for kube-system/dns:dns external destinations" -m addrtype --src-type LOCAL -j SN-MARK-MASQ
-A SN-EXT-D -m comment --comment "route LOCAL traffic for kube-system/dns:dns external destinations" -m addrtype --src-type LOCAL -j SN-SVC-D
-A SN-EXT-D -j SN-SVL-D
-A SN-SVL-D -j SN-SEP-D2
-A SN-SEP-D1 -s 10.64.1.2/32 -j SN-MARK-MASQ
-A SN-SEP-D1 -p udp -m udp -j DNAT --to-destination 10.64.1.2:53
-A SN-SEP-D2 -s 10.64.2.2/32 -j SN-MARK-MASQ
-A SN-SEP-D2 -p udp -m udp -j DNAT --to-destination 10.64.2.2:53
COMMIT
`

// largeUDPWithoutD1 is largeUDP after the endpoint 10.64.1.2:53 went away.
var largeUDPWithoutD1 = strings.NewReplacer(
	":SN-SEP-D1 - [0:0]\n", "",
	"-A SN-SVC-D -m statistic --mode random --probability 0.50000000000 -j SN-SEP-D1\n", "",
	"-A SN-SEP-D1 -s 10.64.1.2/32 -j SN-MARK-MASQ\n", "",
	"-A SN-SEP-D1 -p udp -m udp -j DNAT --to-destination 10.64.1.2:53\n", "",
).Replace(largeUDP)

func TestServiceIndexResolvesUncommentedChainsThroughReferrers(t *testing.T) {
	idx := serviceIndex("SN", parse(t, largeUDP))
	for _, c := range []string{"SN-SVC-D", "SN-EXT-D", "SN-SVL-D", "SN-SEP-D1", "SN-SEP-D2"} {
		if got := idx["nat/"+c]; got != "kube-system/dns" {
			t.Errorf("%s: service %q, want kube-system/dns", c, got)
		}
	}
	// Shared chains stay unattributed even when a single service uses them.
	for _, c := range []string{"PREROUTING", "OUTPUT", "SN-SERVICES", "SN-NODEPORTS", "SN-MARK-MASQ"} {
		if got, ok := idx["nat/"+c]; ok {
			t.Errorf("%s: shared chain attributed to %q", c, got)
		}
	}
}

func TestServiceIndexOwnCommentsAndConflicts(t *testing.T) {
	idx := serviceIndex("SN", parse(t, live))
	for _, c := range []string{"SN-SVC-AAA", "SN-SEP-A1", "SN-SEP-A2"} {
		if got := idx["nat/"+c]; got != "default/web" {
			t.Errorf("%s: service %q, want default/web", c, got)
		}
	}
	if got, ok := idx["nat/SN-SERVICES"]; ok {
		t.Errorf("SN-SERVICES attributed to %q", got)
	}
	// A SEP chain reached from two services' chains belongs to neither; a
	// loop of uncommented chains resolves to nothing and terminates.
	idx = serviceIndex("SN", parse(t, `*nat
:SN-SERVICES - [0:0]
:SN-SVC-A - [0:0]
:SN-SVC-B - [0:0]
:SN-SEP-X - [0:0]
:SN-SVC-L1 - [0:0]
:SN-SVC-L2 - [0:0]
-A SN-SERVICES -d 10.0.0.1/32 -p tcp -m comment --comment "ns/a cluster IP" -m tcp --dport 80 -j SN-SVC-A
-A SN-SERVICES -d 10.0.0.2/32 -p tcp -m comment --comment "ns/b cluster IP" -m tcp --dport 80 -j SN-SVC-B
-A SN-SVC-A -j SN-SEP-X
-A SN-SVC-B -j SN-SEP-X
-A SN-SEP-X -p tcp -m tcp -j DNAT --to-destination 10.64.0.1:80
-A SN-SVC-L1 -j SN-SVC-L2
-A SN-SVC-L2 -j SN-SVC-L1
COMMIT
`))
	want := map[string]string{"nat/SN-SVC-A": "ns/a", "nat/SN-SVC-B": "ns/b"}
	if len(idx) != len(want) || idx["nat/SN-SVC-A"] != "ns/a" || idx["nat/SN-SVC-B"] != "ns/b" {
		t.Fatalf("index %v, want %v", idx, want)
	}
}

func TestStaleUDPLargeCluster(t *testing.T) {
	p := planner.New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, largeUDPWithoutD1)},
		map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, largeUDP)})
	got := (Describer{}).StaleUDP(p.Planned())
	want := []backend.StaleFlow{
		{Family: backend.IPv4, Service: "kube-system/dns", NodePort: 30053, Endpoint: netip.MustParseAddr("10.64.1.2")},
		{Family: backend.IPv4, Service: "kube-system/dns", VIP: netip.MustParseAddr("10.32.0.10"), Port: 53, Endpoint: netip.MustParseAddr("10.64.1.2")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("flow %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestPlanSummaryLargeCluster(t *testing.T) {
	p := planner.New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, largeUDPWithoutD1)},
		map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, largeUDP)})
	d := describePlan(p)
	for i, c := range p.Changes {
		if c.Chain == "SN-SEP-D1" || c.Chain == "SN-SVC-D" {
			if s := d.Chains[i].Service; s != "kube-system/dns" {
				t.Errorf("%s %s: service %q", c.Action, c.Chain, s)
			}
		}
	}
	removed := []backend.Detail{{Subject: backend.SubjectEndpoint, Value: "10.64.1.2:53", Change: backend.DetailRemoved}}
	if len(d.Services) != 1 || d.Services[0].Name != "kube-system/dns" || d.Services[0].Action != backend.Update ||
		!slices.Equal(d.Services[0].Details, removed) {
		t.Fatalf("services %+v", d.Services)
	}
	// And the other way round: the endpoint comes back.
	p = planner.New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, largeUDP)},
		map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, largeUDPWithoutD1)})
	added := []backend.Detail{{Subject: backend.SubjectEndpoint, Value: "10.64.1.2:53", Change: backend.DetailAdded}}
	if svcs := describePlan(p).Services; len(svcs) != 1 || !slices.Equal(svcs[0].Details, added) {
		t.Fatalf("services %+v", svcs)
	}
	// The renderer knows which service a chain it made serves: its word
	// wins over what the rules suggest.
	p.ChainService = map[string]string{"SN-SEP-D1": "other/svc"}
	for i, c := range p.Changes {
		if c.Chain == "SN-SEP-D1" {
			if s := describePlan(p).Chains[i].Service; s != "other/svc" {
				t.Fatalf("SN-SEP-D1 attributed to %q, want the renderer's other/svc", s)
			}
		}
	}
}

// A service whose cluster IP moves reads as that, not as rule noise.
func TestPlanSummaryNamesAddresses(t *testing.T) {
	desired := strings.ReplaceAll(live, "10.0.0.1/32", "10.0.0.2/32")
	p := planner.New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, desired).Owned("SN")},
		map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, live)})
	want := []backend.Detail{{Subject: backend.SubjectClusterIP, Value: "10.0.0.1:80/tcp", Change: backend.DetailRemoved}, {Subject: backend.SubjectClusterIP, Value: "10.0.0.2:80/tcp", Change: backend.DetailAdded}}
	if svcs := describePlan(p).Services; len(svcs) != 1 || !slices.Equal(sortedDetails(svcs[0].Details), want) {
		t.Fatalf("services %+v, want details %+v", svcs, want)
	}
}
