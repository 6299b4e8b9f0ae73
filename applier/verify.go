package applier

import (
	"strings"

	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
)

// foreignText prints the rules svcnat does not own. Empty built-in chains
// with the default policy and empty tables are left out: iptables-restore
// creates a table with its built-in chains the first time svcnat names it,
// which changes no rule of anyone.
func foreignText(rs *rules.Ruleset, prefix string) string {
	f := planner.Foreign(rs, prefix)
	out := &rules.Ruleset{Family: f.Family}
	for _, t := range f.Tables {
		var nt *rules.Table
		for _, c := range t.Chains {
			if c.Builtin() && len(c.Rules) == 0 && c.Policy == "ACCEPT" {
				continue
			}
			if nt == nil {
				nt = out.EnsureTable(t.Name)
			}
			nc := nt.EnsureChain(c.Name)
			nc.Policy = c.Policy
			nc.Rules = c.Rules
		}
	}
	return planner.Text(out)
}

// lineDiff lists the lines only in want (-) or only in got (+).
func lineDiff(want, got string) string {
	var b strings.Builder
	for _, d := range planner.RuleDiffText(want, got) {
		if d.Op != planner.DiffEqual {
			b.WriteString(string(d.Op) + " " + d.Text + "\n")
		}
	}
	return b.String()
}
