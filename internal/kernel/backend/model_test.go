package backend

import (
	"fmt"
	"testing"
)

// ScanText counts what Text wrote without parsing it: the chains each
// table declares (built-in ones left out) and every rule, the first line
// included.
func TestScanTextCountsWhatTextWrote(t *testing.T) {
	rs := &Ruleset{Family: IPv4}
	nat := rs.EnsureTable("nat")
	nat.Append(Rule{Chain: "PREROUTING", Args: []string{"-j", "X-SERVICES"}})
	nat.Append(Rule{Chain: "X-SERVICES", Args: []string{"-m", "comment", "--comment", "a b", "-j", "X-SVC-A"}})
	nat.EnsureChain("X-SVC-A")
	rs.EnsureTable("filter").Append(Rule{Chain: "X-FORWARD", Args: []string{"-j", "ACCEPT"}})

	chains, n := ScanText([]byte(rs.Text()))
	if want := "[{filter X-FORWARD} {nat X-SERVICES} {nat X-SVC-A}]"; fmt.Sprint(chains) != want || n != 3 {
		t.Fatalf("ScanText = %v, %d rules; want %s, 3 rules\n%s", chains, n, want, rs.Text())
	}
	if chains, n := ScanText([]byte("-A X-A -j ACCEPT")); len(chains) != 0 || n != 1 {
		t.Fatalf("a first line that is a rule: %v, %d", chains, n)
	}
}
