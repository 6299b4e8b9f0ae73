package backend

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
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

// Rule.AppendText quotes as iptables-save does; the reference below is the
// obvious form of its rules, which AppendText follows without allocating.
func TestWriteQuotesAsIptablesSave(t *testing.T) {
	quote := func(s string) string {
		var b strings.Builder
		b.WriteByte('"')
		for i := 0; i < len(s); i++ {
			if s[i] == '"' || s[i] == '\\' || s[i] == '\'' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[i])
		}
		return b.String() + `"`
	}
	want := func(r Rule) string {
		out := "-A " + r.Chain
		for i, a := range r.Args {
			switch {
			case i > 0 && r.Args[i-1] == "--comment":
				if a == "" || strings.Trim(a, "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
					a = quote(a)
				}
			case a == "" || strings.ContainsAny(a, " \t'\"\\"):
				a = quote(a)
			}
			out += " " + a
		}
		return out
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "aZ09_-. \t'\"\\/:é"
	word := func() string {
		b := make([]byte, rng.IntN(6))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 5000 {
		r := Rule{Chain: "X-SVC-A"}
		for range rng.IntN(6) {
			if rng.IntN(3) == 0 {
				r.Args = append(r.Args, "--comment")
			}
			r.Args = append(r.Args, word())
		}
		if got, w := r.String(), want(r); got != w {
			t.Fatalf("%q: got %s, want %s", r.Args, got, w)
		}
	}
	r := Rule{Chain: "X", Args: []string{"-m", "comment", "--comment", `default/web:http "cluster" IP`, "-j", "X-SVC-A"}}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = r.AppendText(buf[:0], "-A", 0) }); n != 0 {
		t.Fatalf("AppendText allocates %v times per rule", n)
	}
}

// A writer that fails stops WriteText: the error comes back, and nothing
// more is handed to the writer after it failed.
func TestWriteTextStopsAtAFailedWrite(t *testing.T) {
	rs := &Ruleset{Family: IPv4}
	nat := rs.EnsureTable("nat")
	for i := range 5000 {
		nat.Append(Rule{Chain: fmt.Sprintf("X-SVC-%05d", i), Args: []string{"-m", "comment", "--comment", "a long enough comment to fill pieces", "-j", "X-SEP"}})
	}
	w := &failing{}
	if err := rs.WriteText(w); err == nil || w.calls != 1 {
		t.Fatalf("WriteText = %v after %d writes; want the writer's error after its one write", err, w.calls)
	}
}

type failing struct{ calls int }

func (f *failing) Write(p []byte) (int, error) {
	f.calls++
	return 0, errors.New("disk full")
}
