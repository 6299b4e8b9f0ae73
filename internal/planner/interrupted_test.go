package planner

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

func TestInterruptedNamesUnreachedUnrecordedChains(t *testing.T) {
	parse := func(text string) map[backend.Family]*backend.Ruleset {
		rs, err := rules.ParseSave(backend.IPv4, strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return map[backend.Family]*backend.Ruleset{backend.IPv4: rs}
	}
	// SERVICES is reached from PREROUTING, SVC-A through it, SEP-A through
	// SVC-A; SEP-OP from an operator's chain. SVC-B and SEP-B (which only
	// SVC-B reaches) and SEP-C are reached by nothing; SEP-C is recorded.
	live := parse(`*nat
:PREROUTING ACCEPT [0:0]
:OPERATOR - [0:0]
:SVCNAT-SERVICES - [0:0]
:SVCNAT-SVC-A - [0:0]
:SVCNAT-SEP-A - [0:0]
:SVCNAT-SVC-B - [0:0]
:SVCNAT-SEP-B - [0:0]
:SVCNAT-SEP-C - [0:0]
:SVCNAT-SEP-OP - [0:0]
-A PREROUTING -j SVCNAT-SERVICES
-A OPERATOR -j SVCNAT-SEP-OP
-A SVCNAT-SERVICES -d 10.0.0.1/32 -j SVCNAT-SVC-A
-A SVCNAT-SVC-A -j SVCNAT-SEP-A
-A SVCNAT-SVC-B -j SVCNAT-SEP-B
COMMIT
`)
	recorded := parse("*nat\n:SVCNAT-SEP-C - [0:0]\nCOMMIT\n")
	began := map[string]bool{}
	for _, c := range []string{"SVC-A", "SEP-A", "SVC-B", "SEP-B", "SEP-C", "SEP-OP"} {
		began["IPv4 nat SVCNAT-"+c] = true
	}
	var got []string
	for _, l := range Interrupted("SVCNAT", live, recorded, began) {
		got = append(got, l.String())
	}
	want := "IPv4 nat SVCNAT-SEP-B, IPv4 nat SVCNAT-SVC-B"
	if strings.Join(got, ", ") != want {
		t.Fatalf("Interrupted = %q, want %s", got, want)
	}
	if n := len(Interrupted("SVCNAT", live, nil, began)); n != 3 {
		t.Fatalf("without a recorded generation, %d chains are named, want 3", n)
	}
	// An unreached chain no apply noted is nobody's interrupted apply.
	delete(began, "IPv4 nat SVCNAT-SVC-B")
	if got := Interrupted("SVCNAT", live, nil, began); len(got) != 2 || got[0].Chain != "SVCNAT-SEP-B" {
		t.Fatalf("with SVC-B not noted: %v", got)
	}
	if n := len(Interrupted("SVCNAT", live, nil, nil)); n != 0 {
		t.Fatalf("with nothing noted, %d chains are named", n)
	}
}
