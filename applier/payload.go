// Package applier commits a plan to the kernel: it turns the plan into
// iptables-restore --noflush payloads that touch only owned chains, stages
// large creations, reads the result back to verify it, and restores the
// owned chains from the live snapshot on any failure. It never decides what
// the rules should be (the planner does) and never prints.
package applier

import (
	"sort"

	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
)

// Payload renders the one iptables-restore --noflush transaction that
// turns the live owned rules into the desired ones for a family, skipping
// the chains in staged (already created by an earlier batch). Per table:
// every changed or doomed chain is declared (which creates or flushes it),
// svcnat's jumps in built-in chains are deleted and inserted again at the
// top in the desired order, changed chains are filled, and doomed chains
// are deleted last, after the rules that referenced them are gone (see
// rules.Restore). Nothing else is named, so nothing else changes. It
// returns nil when the family has nothing to do.
func Payload(p *planner.Plan, f rules.Family, staged map[string]bool) []byte {
	var r rules.Restore
	for _, c := range p.Changes {
		if c.Family != f {
			continue
		}
		if c.Builtin {
			for _, rule := range c.Before {
				r.Delete(c.Table, rule)
			}
			for i := len(c.After) - 1; i >= 0; i-- {
				r.Insert(c.Table, 1, c.After[i])
			}
			continue
		}
		if staged[c.Chain] {
			continue
		}
		r.Declare(c.Table, c.Chain)
		if c.Action == planner.Delete {
			r.DeleteChain(c.Table, c.Chain)
			continue
		}
		for _, rule := range c.After {
			r.Append(c.Table, rule)
		}
	}
	return r.Bytes()
}

// Stages splits the chains a plan creates into batches that can be loaded
// before the final transaction: one nf_tables transaction is super-linear
// in the chains it creates, so a cold start of thousands of services is
// created in batches of at most batch chains each. Only chains nothing
// live references yet are staged, and each batch holds chains whose
// targets exist already or come in the same or an earlier batch, so every
// batch loads on its own and none of them is visible to traffic until the
// final transaction adds the references. It returns no batches when the
// plan creates no more than batch chains.
func Stages(p *planner.Plan, f rules.Family, batch int) [][]planner.ChainChange {
	var creates []planner.ChainChange
	for _, c := range p.Changes {
		if c.Family == f && c.Action == planner.Create && !c.Builtin {
			creates = append(creates, c)
		}
	}
	if batch <= 0 || len(creates) <= batch {
		return nil
	}
	// Order by depth: a chain comes after every created chain it jumps to.
	created := map[string]*planner.ChainChange{}
	for i := range creates {
		created[creates[i].Table+"/"+creates[i].Chain] = &creates[i]
	}
	depth := map[string]int{}
	var visit func(key string, seen map[string]bool) int
	visit = func(key string, seen map[string]bool) int {
		if d, ok := depth[key]; ok {
			return d
		}
		if seen[key] {
			return 0 // a cycle; iptables refuses loops anyway
		}
		seen[key] = true
		c := created[key]
		d := 0
		for _, r := range c.After {
			tk := c.Table + "/" + r.Target()
			if _, ok := created[tk]; ok {
				if x := visit(tk, seen) + 1; x > d {
					d = x
				}
			}
		}
		depth[key] = d
		return d
	}
	for k := range created {
		visit(k, map[string]bool{})
	}
	sort.SliceStable(creates, func(i, j int) bool {
		di, dj := depth[creates[i].Table+"/"+creates[i].Chain], depth[creates[j].Table+"/"+creates[j].Chain]
		if di != dj {
			return di < dj
		}
		return creates[i].Chain < creates[j].Chain
	})
	var out [][]planner.ChainChange
	for len(creates) > 0 {
		n := batch
		if n > len(creates) {
			n = len(creates)
		}
		out = append(out, creates[:n])
		creates = creates[n:]
	}
	return out
}

// stagePayload renders one batch of chain creations.
func stagePayload(batch []planner.ChainChange) []byte {
	var r rules.Restore
	for _, c := range batch {
		r.Declare(c.Table, c.Chain)
		for _, rule := range c.After {
			r.Append(c.Table, rule)
		}
	}
	return r.Bytes()
}
