package planner

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

func parse(t *testing.T, s string) *backend.Ruleset {
	t.Helper()
	rs, err := rules.ParseSave(backend.IPv4, strings.NewReader(s))
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
	p := New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: rs.Owned("SN")}, map[backend.Family]*backend.Ruleset{backend.IPv4: rs})
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
	p := New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, desired).Owned("SN")},
		map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, live)})
	s := p.Summary()
	if s.Add != 1 || s.Change != 1 || s.Remove != 1 || s.RulesAdded != 2 || s.RulesRemoved != 2 {
		t.Fatalf("summary %+v, changes %+v", s, p.Changes)
	}
}

func TestPlanRemovesEverythingWhenNothingDesired(t *testing.T) {
	p := New("SN", "nft", nil, map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, live)})
	s := p.Summary()
	if s.Remove != 4 || s.Change != 2 || s.Add != 0 {
		t.Fatalf("summary %+v", s)
	}
}

func TestPlanFileRoundTrip(t *testing.T) {
	p := New("SN", "legacy", nil, map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, live)})
	data, err := MarshalPlan(p, "sha256:cfg")
	if err != nil {
		t.Fatal(err)
	}
	q, digest, err := UnmarshalPlan(data, kernel.Pure)
	if err != nil {
		t.Fatal(err)
	}
	if digest != "sha256:cfg" || q.Fingerprint != p.Fingerprint || q.Summary() != p.Summary() {
		t.Fatalf("round trip changed the plan: %+v vs %+v", q.Summary(), p.Summary())
	}
	tampered := strings.Replace(string(data), "10.64.1.2:80", "10.64.9.9:80", 1)
	if _, _, err := UnmarshalPlan([]byte(tampered), kernel.Pure); err == nil {
		t.Fatal("a tampered live snapshot was accepted")
	}
}
