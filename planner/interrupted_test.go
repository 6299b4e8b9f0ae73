package planner

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/rules"
)

func TestInterruptedNamesUnreachedUnrecordedChains(t *testing.T) {
	parse := func(text string) map[rules.Family]*rules.Ruleset {
		rs, err := rules.ParseSave(rules.IPv4, strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return map[rules.Family]*rules.Ruleset{rules.IPv4: rs}
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
	var got []string
	for _, l := range Interrupted("SVCNAT", live, recorded) {
		got = append(got, l.String())
	}
	want := "IPv4 nat SVCNAT-SEP-B, IPv4 nat SVCNAT-SVC-B"
	if strings.Join(got, ", ") != want {
		t.Fatalf("Interrupted = %q, want %s", got, want)
	}
	if n := len(Interrupted("SVCNAT", live, nil)); n != 3 {
		t.Fatalf("without a recorded generation, %d chains are named, want 3", n)
	}
}
