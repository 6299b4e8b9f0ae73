package planner

import (
	"fmt"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// probabilityChain is the text of a service chain picking among n
// endpoints, kube-proxy style: rule i jumps with probability 1/(n-i), so
// removing an endpoint changes every rule before it.
func probabilityChain(n int, skip int) string {
	var b strings.Builder
	b.WriteString("-A SVC -m comment --comment head -j MARK-MASQ\n")
	m := n
	if skip >= 0 {
		m--
	}
	k := 0
	for i := 0; i < n; i++ {
		if i == skip {
			continue
		}
		if k < m-1 {
			fmt.Fprintf(&b, "-A SVC -m statistic --mode random --probability %.11f -j SEP-%d\n", 1/float64(m-k), i)
		} else {
			fmt.Fprintf(&b, "-A SVC -j SEP-%d\n", i)
		}
		k++
	}
	return b.String()
}

// ruleList parses text, one "-A chain args" rule a line, into rules.
func ruleList(tb testing.TB, text string) []backend.Rule {
	var out []backend.Rule
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		toks, err := rules.Tokenize(l)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, backend.Rule{Chain: toks[1], Args: toks[2:]})
	}
	return out
}

// TestRuleDiffSides checks that the lines of the runs a plan stores give
// back both rule lists (equal and removed lines the first, equal and
// added lines the second) and count what they show, for a chain changed
// a little, one rewritten whole (thousands of lines, where the diff shows
// the lines between the common head and tail whole), created and deleted.
func TestRuleDiffSides(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after string
	}{
		{"changed", probabilityChain(10, -1), probabilityChain(10, 4)},
		{"rewritten", probabilityChain(3000, -1), probabilityChain(3000, 2999)},
		{"created", "", probabilityChain(5, -1)},
		{"deleted", probabilityChain(5, -1), ""},
	} {
		var before, after []backend.Rule
		if tc.before != "" {
			before = ruleList(t, tc.before)
		}
		if tc.after != "" {
			after = ruleList(t, tc.after)
		}
		c := backend.ChainChange{Before: before, After: after, Diff: RuleRuns(before, after)}
		var gotBefore, gotAfter strings.Builder
		var first backend.DiffOp
		added, removed := 0, 0
		for op, r := range c.Lines() {
			if first == 0 {
				first = op
			}
			switch op {
			case backend.DiffInsert:
				added++
			case backend.DiffDelete:
				removed++
			}
			if op != backend.DiffInsert {
				gotBefore.WriteString(r.String() + "\n")
			}
			if op != backend.DiffDelete {
				gotAfter.WriteString(r.String() + "\n")
			}
		}
		if gotBefore.String() != tc.before || gotAfter.String() != tc.after {
			t.Errorf("%s: the diff does not give back both sides", tc.name)
		}
		if before != nil && after != nil && first != backend.DiffEqual {
			t.Errorf("%s: the common first line is shown as %c, want unchanged", tc.name, first)
		}
		if c.Added() != added || c.Removed() != removed {
			t.Errorf("%s: counts %d added, %d removed; the lines show %d, %d", tc.name, c.Added(), c.Removed(), added, removed)
		}
	}
}

// BenchmarkRuleDiffServiceChain diffs a service chain of 5,000 endpoints
// (config.MaxServiceEndpoints) against itself without its last endpoint:
// every probability changes, the case whose cost Myers' diff squares.
func BenchmarkRuleDiffServiceChain(b *testing.B) {
	before, after := ruleList(b, probabilityChain(5000, -1)), ruleList(b, probabilityChain(5000, 4999))
	for i := 0; i < b.N; i++ {
		RuleRuns(before, after)
	}
}
