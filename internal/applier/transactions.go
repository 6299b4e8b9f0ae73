package applier

import (
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/planner"
)

// Transactions are the transactions that apply the plan's changes of
// family f on k: staged creations of at most batch chains each, and the
// final one (see backend.Transactions), not yet written.
func Transactions(p *planner.Plan, f rules.Family, batch int) (stages []*backend.Transaction, final *backend.Transaction) {
	return backend.Transactions(f, changes(p, f), batch)
}

// changes are the plan's changes of family f as a backend takes them. The
// rules are the plan's own, not copies.
func changes(p *planner.Plan, f rules.Family) []backend.Change {
	n := 0
	for i := range p.Changes {
		if p.Changes[i].Family == f {
			n++
		}
	}
	out := make([]backend.Change, 0, n)
	for i := range p.Changes {
		c := &p.Changes[i]
		if c.Family != f {
			continue
		}
		out = append(out, backend.Change{Table: c.Table, Chain: c.Chain, Builtin: c.Builtin,
			Create: c.Action == planner.Create, Delete: c.Action == planner.Delete, Before: c.Before, After: c.After})
	}
	return out
}
