package planner

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// pinned is live with an operator's chain jumping into an owned SEP chain.
var pinned = strings.NewReplacer(
	":DOCKER - [0:0]\n", ":DOCKER - [0:0]\n:MYCHAIN - [0:0]\n",
	"-A DOCKER -i docker0 -j RETURN\n", "-A DOCKER -i docker0 -j RETURN\n-A MYCHAIN -s 10.9.9.9/32 -j SN-SEP-A2\n",
).Replace(live)

func TestPlanBlockedByForeignJump(t *testing.T) {
	desired := strings.NewReplacer(
		":SN-SEP-A2 - [0:0]\n", "",
		`-A SN-SVC-AAA -m comment --comment "default/web -> 10.64.1.2:80" -m statistic --mode random --probability 0.50000000000 -j SN-SEP-A1`, `-A SN-SVC-AAA -m comment --comment "default/web -> 10.64.1.2:80" -j SN-SEP-A1`,
		`-A SN-SVC-AAA -m comment --comment "default/web -> 10.64.1.3:80" -j SN-SEP-A2`+"\n", "",
		`-A SN-SEP-A2 -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.64.1.3:80`+"\n", "",
	).Replace(live)
	p := New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, desired).Owned("SN")},
		map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, pinned)})
	want := Blocked{Family: backend.IPv4, Table: "nat", Pins: "SN-SEP-A2",
		Rule: backend.Rule{Chain: "MYCHAIN", Args: []string{"-s", "10.9.9.9/32", "-j", "SN-SEP-A2"}}}
	same := func(b Blocked) bool {
		return b.Family == want.Family && b.Table == want.Table && b.Pins == want.Pins && b.Rule.String() == want.Rule.String()
	}
	if len(p.Blocked) != 1 || !same(p.Blocked[0]) {
		t.Fatalf("blocked %+v, want [%+v]", p.Blocked, want)
	}
	// The same jump does not block a plan that keeps the chain ...
	if q := New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, live).Owned("SN")},
		map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, pinned)}); len(q.Blocked) != 0 {
		t.Fatalf("blocked %+v", q.Blocked)
	}
	// ... nor a plan without it.
	if q := New("SN", "nft", map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, desired).Owned("SN")},
		map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, live)}); len(q.Blocked) != 0 {
		t.Fatalf("blocked %+v", q.Blocked)
	}
	// Removing everything is blocked too; a saved plan holds only owned
	// rules, so Blocked is recomputed against the live dump before apply.
	all := New("SN", "nft", nil, map[backend.Family]*backend.Ruleset{backend.IPv4: parse(t, pinned)})
	if len(all.Blocked) != 1 || !same(all.Blocked[0]) {
		t.Fatalf("blocked %+v", all.Blocked)
	}
	data, err := MarshalPlan(all, "")
	if err != nil {
		t.Fatal(err)
	}
	saved, _, err := UnmarshalPlan(data, kernel.Pure)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved.Blocked) != 0 || saved.Fingerprint != all.Fingerprint {
		t.Fatalf("saved plan: blocked %+v", saved.Blocked)
	}
}
