package planner

import (
	"fmt"
	"slices"
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

// TestRuleDiffTextSides checks that a diff gives back both texts (equal
// and removed lines the first, equal and added lines the second), for a
// small change and for one that rewrites thousands of lines, where the
// diff shows the lines between the common head and tail whole.
func TestRuleDiffTextSides(t *testing.T) {
	for _, n := range []int{10, 3000} {
		before, after := probabilityChain(n, -1), probabilityChain(n, n-1)
		diff := RuleDiffText(before, after)
		var gotBefore, gotAfter strings.Builder
		for _, l := range diff {
			if l.Op != DiffInsert {
				gotBefore.WriteString(l.Text + "\n")
			}
			if l.Op != DiffDelete {
				gotAfter.WriteString(l.Text + "\n")
			}
		}
		if gotBefore.String() != before || gotAfter.String() != after {
			t.Errorf("n=%d: the diff does not give back both texts", n)
		}
		if diff[0].Op != DiffEqual {
			t.Errorf("n=%d: the common first line is shown as %c, want unchanged", n, diff[0].Op)
		}
	}
}

// BenchmarkRuleDiffServiceChain diffs a service chain of 5,000 endpoints
// (config.MaxServiceEndpoints) against itself without its last endpoint:
// every probability changes, the case whose cost Myers' diff squares.
func BenchmarkRuleDiffServiceChain(b *testing.B) {
	before, after := probabilityChain(5000, -1), probabilityChain(5000, 4999)
	for i := 0; i < b.N; i++ {
		RuleDiffText(before, after)
	}
}

// TestRuleRunsAreTheTextDiff checks that the runs a plan stores are the
// diff the text differ makes, line for line, for a chain changed a little,
// rewritten whole, created and deleted; and that they count what they show.
func TestRuleRunsAreTheTextDiff(t *testing.T) {
	ruleList := func(text string) []backend.Rule {
		var out []backend.Rule
		for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			toks, err := rules.Tokenize(l)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, backend.Rule{Chain: toks[1], Args: toks[2:]})
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		before, after []backend.Rule
	}{
		{"changed", ruleList(probabilityChain(10, -1)), ruleList(probabilityChain(10, 4))},
		{"rewritten", ruleList(probabilityChain(3000, -1)), ruleList(probabilityChain(3000, 2999))},
		{"created", nil, ruleList(probabilityChain(5, -1))},
		{"deleted", ruleList(probabilityChain(5, -1)), nil},
	} {
		c := ChainChange{Before: tc.before, After: tc.after, Diff: RuleRuns(tc.before, tc.after)}
		var got []DiffLine
		added, removed := 0, 0
		for op, r := range c.Lines() {
			got = append(got, DiffLine{Op: op, Text: r.String()})
			switch op {
			case DiffInsert:
				added++
			case DiffDelete:
				removed++
			}
		}
		want := RuleDiffText(ruleText(tc.before), ruleText(tc.after))
		if !slices.Equal(got, want) {
			t.Errorf("%s: the runs' lines differ from the text diff", tc.name)
		}
		if c.Added() != added || c.Removed() != removed {
			t.Errorf("%s: counts %d added, %d removed; the lines show %d, %d", tc.name, c.Added(), c.Removed(), added, removed)
		}
	}
}
