package rules

import (
	"os"
	"strings"
	"testing"
)

// FuzzParseSave feeds arbitrary dumps to the parser: it must never panic,
// and whatever it accepts must print back to a dump it parses to the same
// rules (the writer and the parser agree).
func FuzzParseSave(f *testing.F) {
	for _, p := range []string{"testdata/overall.saved", "testdata/overall.written"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("*nat\n:X - [0:0]\n-A X -m comment --comment \"a \\\" b\" -j Y\nCOMMIT\n")
	f.Fuzz(func(t *testing.T, dump string) {
		rs, err := ParseSave(IPv4, strings.NewReader(dump))
		if err != nil {
			return
		}
		var b strings.Builder
		if err := rs.WriteSave(&b); err != nil {
			t.Fatal(err)
		}
		again, err := ParseSave(IPv4, strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("written dump does not parse: %v\n%s", err, b.String())
		}
		var b2 strings.Builder
		if err := again.WriteSave(&b2); err != nil {
			t.Fatal(err)
		}
		if b.String() != b2.String() {
			t.Fatalf("write/parse not stable:\n%s\n---\n%s", b.String(), b2.String())
		}
		for _, t2 := range rs.Tables {
			for _, c := range t2.Chains {
				for _, r := range c.Rules {
					_, _ = Canonicalize(IPv4, r.Args) // must not panic
				}
			}
		}
	})
}
