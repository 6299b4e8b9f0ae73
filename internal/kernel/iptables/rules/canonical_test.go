package rules

import (
	"os"
	"strings"
	"testing"
)

func mustParse(t *testing.T, path string) *Ruleset {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs, err := ParseSave(IPv4, f)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// The written form of kube-proxy's TestOverallIPTablesRules, canonicalized,
// must be exactly what iptables-nft-save printed after loading it.
func TestCanonicalizeMatchesKernelEcho(t *testing.T) {
	written := mustParse(t, "testdata/overall.written")
	saved := mustParse(t, "testdata/overall.saved")
	for _, tbl := range written.Tables {
		st := saved.Table(tbl.Name)
		for _, c := range tbl.Chains {
			sc := st.Chain(c.Name)
			if sc == nil {
				t.Fatalf("%s: chain %s missing from saved dump", tbl.Name, c.Name)
			}
			if len(sc.Rules) != len(c.Rules) {
				t.Fatalf("%s %s: %d rules written, %d saved", tbl.Name, c.Name, len(c.Rules), len(sc.Rules))
			}
			for i, r := range c.Rules {
				got, err := CanonicalRule(IPv4, r)
				if err != nil {
					t.Fatal(err)
				}
				if got.String() != sc.Rules[i].String() {
					t.Errorf("canonical form differs\n written: %s\n     got: %s\n    want: %s", r, got, sc.Rules[i])
				}
				again, err := CanonicalRule(IPv4, got)
				if err != nil || again.String() != got.String() {
					t.Errorf("canonicalize is not idempotent: %s -> %s (%v)", got, again, err)
				}
			}
		}
	}
}

func TestFormatProbability(t *testing.T) {
	for p, want := range map[float64]string{
		1.0 / 2: "0.50000000000", 1.0 / 3: "0.33333333349", 1.0 / 4: "0.25000000000",
	} {
		if got := FormatProbability(p); got != want {
			t.Errorf("FormatProbability(%v) = %s, want %s", p, got, want)
		}
	}
}

func TestTokenizeQuotes(t *testing.T) {
	got, err := Tokenize(`-A X -m comment --comment "a b" -j Y`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "-A|X|-m|comment|--comment|a b|-j|Y" {
		t.Fatalf("got %q", got)
	}
	if _, err := Tokenize(`-A X --comment "open`); err == nil {
		t.Fatal("unterminated quote accepted")
	}
}

func TestSaveRoundTrip(t *testing.T) {
	saved := mustParse(t, "testdata/overall.saved")
	var b strings.Builder
	if err := saved.WriteSave(&b); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("testdata/overall.saved")
	if b.String() != string(want) {
		t.Fatalf("WriteSave(ParseSave(x)) != x\n%s", b.String())
	}
}
