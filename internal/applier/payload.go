// Package applier commits a plan to the kernel: it turns the plan into
// iptables-restore --noflush payloads that touch only owned chains, stages
// large creations, reads the result back to verify it, and restores the
// owned chains from the live snapshot on any failure. It never decides what
// the rules should be (the planner does) and never prints.
package applier

import (
	"hash/fnv"
	"sort"

	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/planner"
)

// Payload renders the one iptables-restore --noflush transaction that
// turns the live owned rules into the desired ones for a family, skipping
// the chains in staged (already created by an earlier batch). Per table:
// every changed or doomed chain is declared (which creates or flushes it),
// svcnat's jumps in built-in chains are deleted and inserted again at the
// top in the desired order, changed chains are filled, and doomed chains
// are deleted last, after the rules that referenced them are gone (see
// rules.Restore). Nothing else is named, so nothing else changes. The
// payload is empty when the family has nothing to do.
func Payload(p *planner.Plan, f rules.Family, staged map[string]bool) *rules.Restore {
	r := &rules.Restore{}
	order := creationOrder(p.Changes, f)
	size := map[string]int{}
	for _, c := range order {
		if !c.Builtin && !staged[c.Chain] {
			for _, rule := range c.After {
				size[c.Table] += rule.Size()
			}
		}
	}
	for table, n := range size {
		if n > 0 {
			r.Grow(table, n)
		}
	}
	for _, c := range order {
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
	return r
}

// creationOrder returns the changes of family f in the order their chains
// are created. The order of a payload's declarations matters only for the
// chains it creates (declaring an existing chain flushes it in place), and
// it matters twice:
//
//   - iptables-nft-save (1.8.9) takes time quadratic in the number of
//     chains when they were created in name order: 18,000 chains created
//     sorted save in 2.4 s, created in an order unrelated to their names in
//     0.2 s (docs/PERFORMANCE.md). Chain names are hashes, and the plan
//     lists chains by name.
//   - Staged batches (Stages) must each load on their own, so a chain comes
//     after every created chain it jumps to; and iptables-nft-restore slows
//     down sharply for a batch whose rules jump into chains of earlier
//     batches, so a service's chains had better come together.
//
// So created chains come in post-order from the created chains nothing
// created jumps to (SERVICES on a cold start, else a new service's SVC or
// EXT chain), taken in the order of a hash of their names: a service's
// endpoint chains, then the chains that jump to them, service by service
// in the order SERVICES lists them. Built-in chains come first and the
// changed and deleted chains last, as the plan lists them.
func creationOrder(changes []planner.ChainChange, f rules.Family) []*planner.ChainChange {
	type key struct{ table, chain string }
	var builtin, created, rest []*planner.ChainChange
	byKey := map[key]int{}
	for i := range changes {
		c := &changes[i]
		switch {
		case c.Family != f:
		case c.Builtin:
			builtin = append(builtin, c)
		case c.Action == planner.Create:
			byKey[key{c.Table, c.Chain}] = len(created)
			created = append(created, c)
		default:
			rest = append(rest, c)
		}
	}
	// targets[i] are the created chains created[i] jumps to.
	targets := make([][]int32, len(created))
	jumpedTo := make([]bool, len(created))
	for i, c := range created {
		for _, r := range c.After {
			if j, ok := byKey[key{c.Table, r.Target()}]; ok {
				targets[i] = append(targets[i], int32(j))
				jumpedTo[j] = true
			}
		}
	}
	type root struct {
		i   int
		key uint32
	}
	var roots []root
	for i := range created {
		if !jumpedTo[i] {
			roots = append(roots, root{i, creationKey(created[i].Chain)})
		}
	}
	sort.SliceStable(roots, func(a, b int) bool { return roots[a].key < roots[b].key })
	out := make([]*planner.ChainChange, 0, len(builtin)+len(created)+len(rest))
	out = append(out, builtin...)
	state := make([]uint8, len(created)) // 1 visiting, 2 emitted
	var visit func(i int)
	visit = func(i int) {
		if state[i] != 0 {
			return // emitted, or a loop (iptables refuses loops anyway)
		}
		state[i] = 1
		for _, j := range targets[i] {
			visit(int(j))
		}
		state[i] = 2
		out = append(out, created[i])
	}
	for _, r := range roots {
		visit(r.i)
	}
	for i := range created { // chains only reachable through a loop
		visit(i)
	}
	return append(out, rest...)
}

// creationKey orders the roots of creationOrder by a hash of their names.
func creationKey(chain string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(chain))
	return h.Sum32()
}

// Stages splits the chains a plan creates into batches that can be loaded
// before the final transaction: one nf_tables transaction is super-linear
// in the chains it creates, so a cold start of thousands of services is
// created in batches of at most batch chains each. Only chains nothing
// live references yet are staged (a created chain cannot be referenced by
// a live one), in creationOrder, so each batch holds chains whose targets
// exist already or come in the same or an earlier batch: every batch loads
// on its own, and none of them is visible to traffic until the final
// transaction adds the references. It returns no batches when the plan
// creates no more than batch chains.
func Stages(p *planner.Plan, f rules.Family, batch int) [][]*planner.ChainChange {
	var creates []*planner.ChainChange
	for _, c := range creationOrder(p.Changes, f) {
		if c.Action == planner.Create && !c.Builtin {
			creates = append(creates, c)
		}
	}
	if batch <= 0 || len(creates) <= batch {
		return nil
	}
	var out [][]*planner.ChainChange
	for len(creates) > 0 {
		n := min(batch, len(creates))
		out = append(out, creates[:n])
		creates = creates[n:]
	}
	return out
}

// stagePayload renders one batch of chain creations.
func stagePayload(batch []*planner.ChainChange) *rules.Restore {
	r := &rules.Restore{}
	for _, c := range batch {
		r.Declare(c.Table, c.Chain)
		for _, rule := range c.After {
			r.Append(c.Table, rule)
		}
	}
	return r
}
