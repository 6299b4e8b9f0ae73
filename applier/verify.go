package applier

import (
	"strings"

	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
)

// touchedBuiltins names the built-in chains ("table/chain") whose svcnat
// jumps the plan rewrites.
func touchedBuiltins(p *planner.Plan, f rules.Family) map[string]bool {
	out := map[string]bool{}
	for _, c := range p.Changes {
		if c.Family == f && c.Builtin {
			out[c.Table+"/"+c.Chain] = true
		}
	}
	return out
}

// foreignText prints the rules svcnat does not own in the given built-in
// chains: the foreign rules its payload could have disturbed. An empty
// chain with the default policy prints as nothing: iptables-restore creates
// a table with its built-in chains the first time svcnat names it, which
// changes no rule of anyone.
func foreignText(rs *rules.Ruleset, prefix string, chains map[string]bool) string {
	f := rs.Foreign(prefix)
	out := &rules.Ruleset{Family: f.Family}
	for _, t := range f.Tables {
		for _, c := range t.Chains {
			if !chains[t.Name+"/"+c.Name] || len(c.Rules) == 0 && c.Policy == "ACCEPT" {
				continue
			}
			nc := out.EnsureTable(t.Name).EnsureChain(c.Name)
			nc.Policy = c.Policy
			nc.Rules = c.Rules
		}
	}
	return out.Text()
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
