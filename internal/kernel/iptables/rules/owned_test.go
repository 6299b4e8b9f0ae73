package rules

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// mixed is a namespace where Docker, an operator and svcnat (prefix SN)
// all have rules; MYCHAIN jumps into one of svcnat's chains.
const mixed = `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:MYCHAIN - [0:0]
:SN-SERVICES - [0:0]
:SN-SEP-A2 - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A PREROUTING -m comment --comment "svcnat service portals" -j SN-SERVICES
-A OUTPUT -m comment --comment "svcnat service portals" -j SN-SERVICES
-A DOCKER -i docker0 -j RETURN
-A MYCHAIN -s 10.9.9.9/32 -j SN-SEP-A2
-A SN-SERVICES -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j SN-SEP-A2
-A SN-SEP-A2 -p tcp -m tcp -j DNAT --to-destination 10.64.1.3:80
COMMIT
`

func parseText(t *testing.T, s string) *Ruleset {
	t.Helper()
	rs, err := ParseSave(IPv4, strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestOwnedAndForeignPartitionTheRules(t *testing.T) {
	rs := parseText(t, mixed)
	owned, foreign := rs.Owned("SN").Text(), rs.Foreign("SN").Text()
	if strings.Contains(owned, "DOCKER") || strings.Contains(owned, "MYCHAIN") {
		t.Fatalf("owned rules hold foreign ones:\n%s", owned)
	}
	if !strings.Contains(owned, `-A PREROUTING -m comment --comment "svcnat service portals" -j SN-SERVICES`) {
		t.Fatalf("owned rules lack the built-in jump:\n%s", owned)
	}
	// A jump into an owned chain from a foreign chain stays foreign: it
	// is the operator's rule, and it pins the chain.
	if !strings.Contains(foreign, "-A MYCHAIN -s 10.9.9.9/32 -j SN-SEP-A2") || strings.Contains(foreign, ":SN-") ||
		strings.Contains(foreign, "svcnat service portals") {
		t.Fatalf("foreign rules wrong:\n%s", foreign)
	}
	if n, o, f := rs.RuleCount(), rs.Owned("SN").RuleCount(), rs.Foreign("SN").RuleCount(); o+f != n {
		t.Fatalf("owned %d + foreign %d rules != %d", o, f, n)
	}
}

func TestTextIsOrderIndependent(t *testing.T) {
	a := parseText(t, mixed)
	b := a.Clone()
	// A backend that lists chains in another order prints the same text.
	c := b.Tables[0].Chains
	c[0], c[len(c)-1] = c[len(c)-1], c[0]
	if a.Text() != b.Text() {
		t.Fatalf("Text depends on chain order:\n%s\n---\n%s", a.Text(), b.Text())
	}
	// The clone is a copy: changing it leaves the original alone.
	b.Tables[0].Chain("DOCKER").Rules = nil
	if a.Table("nat").Chain("DOCKER").Rules == nil {
		t.Fatal("Clone shares rule lists with the original")
	}
	var nilRS *Ruleset
	if nilRS.Text() != "" {
		t.Fatal("a nil ruleset prints text")
	}
}

func TestRestoreOrdersDeclarationsCommandsDeletions(t *testing.T) {
	var r Restore
	if !r.Empty() || r.Bytes() != nil {
		t.Fatal("zero Restore is not empty")
	}
	jump := Rule{Chain: "PREROUTING", Args: []string{"-m", "comment", "--comment", "svcnat service portals", "-j", "SN-SERVICES"}}
	r.DeleteChain(TableNAT, "SN-OLD")
	r.Delete(TableNAT, jump)
	r.Insert(TableNAT, 1, jump)
	r.Declare(TableNAT, "SN-SERVICES")
	r.Append(TableNAT, Rule{Chain: "SN-SERVICES", Args: []string{"-j", "RETURN"}})
	r.Declare(TableFilter, "SN-FORWARD")
	r.Declare("mangle", "SN-X")
	want := `*filter
:SN-FORWARD - [0:0]
COMMIT
*nat
:SN-SERVICES - [0:0]
-D PREROUTING -m comment --comment "svcnat service portals" -j SN-SERVICES
-I PREROUTING 1 -m comment --comment "svcnat service portals" -j SN-SERVICES
-A SN-SERVICES -j RETURN
-X SN-OLD
COMMIT
*mangle
:SN-X - [0:0]
COMMIT
`
	if got := string(r.Bytes()); got != want {
		t.Fatalf("payload:\n%s\nwant:\n%s", got, want)
	}
	if n := r.Lines(); n != strings.Count(want, "\n") {
		t.Fatalf("Lines() = %d, want %d", n, strings.Count(want, "\n"))
	}
}

// Parsing a dump like a ruleset shares the rules they have in common, and
// gives the same rules as a plain parse.
func TestParseSaveLikeSharesEqualRules(t *testing.T) {
	like := parseText(t, mixed)
	changed := strings.Replace(mixed, "-A DOCKER -i docker0 -j RETURN", "-A DOCKER -i docker1 -j RETURN", 1)
	got, err := ParseSaveLike(IPv4, changed, like)
	if err != nil {
		t.Fatal(err)
	}
	if plain := parseText(t, changed); got.Text() != plain.Text() {
		t.Fatalf("ParseSaveLike differs from ParseSave:\n%s\n---\n%s", got.Text(), plain.Text())
	}
	same := func(a, b Rule) bool { return &a.Args[0] == &b.Args[0] }
	nat, lnat := got.Table("nat"), like.Table("nat")
	if !same(nat.Chain("SN-SEP-A2").Rules[0], lnat.Chain("SN-SEP-A2").Rules[0]) {
		t.Error("an equal rule was not shared")
	}
	if same(nat.Chain("DOCKER").Rules[0], lnat.Chain("DOCKER").Rules[0]) {
		t.Error("a changed rule shares the old one's arguments")
	}
}

func TestOwnsLeavesOutTheCanary(t *testing.T) {
	for chain, want := range map[string]bool{
		"SVCNAT-SERVICES": true, "SVCNAT-SVC-ABC": true, "SVCNAT-CANARY": false, "SVCNAT-CANARY2": true,
		"SVCNAT": false, "SVCNATX-SERVICES": false, "KUBE-SERVICES": false, "SVCNAT-": true,
	} {
		if got := backend.Owns("SVCNAT", chain); got != want {
			t.Errorf("backend.Owns(SVCNAT, %s) = %v", chain, got)
		}
	}
	if backend.Canary("SVCNAT") != "SVCNAT-CANARY" {
		t.Fatal(backend.Canary("SVCNAT"))
	}
}

// TestOwnedOnlyInNatAndFilter: svcnat writes nat and filter only, so a
// chain of its prefix in another table (kube-proxy's KUBE-PROXY-CANARY in
// mangle, under the prefix KUBE) is never its: not owned, kept foreign.
func TestOwnedOnlyInNatAndFilter(t *testing.T) {
	rs := parseText(t, `*mangle
:PREROUTING ACCEPT [0:0]
:SN-PROXY-CANARY - [0:0]
:SN-MARK - [0:0]
-A PREROUTING -j SN-MARK
COMMIT
*raw
:SN-RAW - [0:0]
COMMIT
*filter
:SN-FIREWALL - [0:0]
COMMIT
`+mixed)
	owned, foreign := rs.Owned("SN").Text(), rs.Foreign("SN").Text()
	for _, name := range []string{"SN-PROXY-CANARY", "SN-MARK", "SN-RAW"} {
		if strings.Contains(owned, name) {
			t.Fatalf("owned rules hold %s of a table svcnat never writes:\n%s", name, owned)
		}
		if !strings.Contains(foreign, ":"+name) {
			t.Fatalf("foreign rules lost %s:\n%s", name, foreign)
		}
	}
	if !strings.Contains(foreign, "-A PREROUTING -j SN-MARK") {
		t.Fatalf("foreign rules lost mangle's jump:\n%s", foreign)
	}
	if !strings.Contains(owned, ":SN-FIREWALL") || !strings.Contains(owned, ":SN-SEP-A2") {
		t.Fatalf("owned rules lost nat's or filter's chains:\n%s", owned)
	}
	if !backend.OwnsIn("SN", "nat", "SN-X") || !backend.OwnsIn("SN", "filter", "SN-X") || backend.OwnsIn("SN", "mangle", "SN-X") || backend.OwnsIn("SN", "nat", "SN-CANARY") {
		t.Fatal("OwnsIn")
	}
}
