package applier

import (
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
)

// Transactions are the transactions that apply the plan's changes of
// family f: staged creations of at most batch chains each, and the final
// one (see backend.Kernel.Transactions), not yet written. They hold the plan's
// own changes, not copies, when the plan lists them family by family, as
// planner.New does.
func Transactions(k backend.Kernel, p *planner.Plan, f backend.Family, batch int) (stages []*backend.Transaction, final *backend.Transaction) {
	return k.Transactions(f, familyChanges(p, f), batch)
}

// familyChanges is the plan's changes of family f: the run of them in the
// plan, or a copy of their headers if they are not one run.
func familyChanges(p *planner.Plan, f backend.Family) []backend.ChainChange {
	lo := 0
	for lo < len(p.Changes) && p.Changes[lo].Family != f {
		lo++
	}
	hi := lo
	for hi < len(p.Changes) && p.Changes[hi].Family == f {
		hi++
	}
	for _, c := range p.Changes[hi:] {
		if c.Family == f {
			var out []backend.ChainChange
			for _, c := range p.Changes {
				if c.Family == f {
					out = append(out, c)
				}
			}
			return out
		}
	}
	return p.Changes[lo:hi]
}
