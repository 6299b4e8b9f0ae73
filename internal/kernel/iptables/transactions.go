package iptables

import (
	"hash/fnv"
	"sort"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// transactions is Kernel.Transactions of every iptables kernel (the
// runner, the fake, a dump): it turns a family's chain changes into the
// transactions that apply them: staged ones, each creating at most batch chains nothing live
// references yet, and the final one, which writes everything else and is
// the only one traffic sees. One nf_tables transaction is super-linear in
// the chains it creates, so a cold start of thousands of services is
// created in batches; there are no stages when batch is backend.NoStaging (or 0)
// or the created chains fit in one. Every staged batch loads on its own
// (see creationOrder). final has no changes when there is nothing to do.
func transactions(fam backend.Family, changes []backend.ChainChange, batch int) (stages []*backend.Transaction, final *backend.Transaction) {
	order := creationOrder(changes)
	final = &backend.Transaction{Family: fam}
	creates := 0
	for _, c := range order {
		if c.Action == backend.Create && !c.Builtin {
			creates++
		}
	}
	if batch <= 0 || creates <= batch {
		final.Changes = order
		return nil, final
	}
	final.Changes = make([]*backend.ChainChange, 0, len(order)-creates)
	var cur *backend.Transaction
	for _, c := range order {
		if c.Action != backend.Create || c.Builtin {
			final.Changes = append(final.Changes, c)
			continue
		}
		if cur == nil || len(cur.Changes) == batch {
			cur = &backend.Transaction{Family: fam, Changes: make([]*backend.ChainChange, 0, min(batch, creates))}
			stages = append(stages, cur)
		}
		cur.Changes = append(cur.Changes, c)
		creates--
	}
	return stages, final
}

// creationOrder returns changes in the order their chains are created.
// The order of a transaction's declarations matters only for the chains it
// creates (declaring an existing chain flushes it in place), and it
// matters twice:
//
//   - iptables-nft-save (1.8.9) takes time quadratic in the number of
//     chains when they were created in name order: 18,000 chains created
//     sorted save in 2.4 s, created in an order unrelated to their names in
//     0.2 s (docs/PERFORMANCE.md). Chain names are hashes, and the plan
//     lists chains by name.
//   - Staged batches must each load on their own, so a chain comes after
//     every created chain it jumps to; and iptables-nft-restore slows down
//     sharply for a batch whose rules jump into chains of earlier batches,
//     so a service's chains had better come together.
//
// So created chains come in post-order from the created chains nothing
// created jumps to (SERVICES on a cold start, else a new service's SVC or
// EXT chain), taken in the order of a hash of their names: a service's
// endpoint chains, then the chains that jump to them, service by service
// in the order SERVICES lists them. Built-in chains come first and the
// changed and deleted chains last, in the order given.
func creationOrder(changes []backend.ChainChange) []*backend.ChainChange {
	type key struct{ table, chain string }
	var builtin, created, rest []*backend.ChainChange
	byKey := map[key]int{}
	for i := range changes {
		c := &changes[i]
		switch {
		case c.Builtin:
			builtin = append(builtin, c)
		case c.Action == backend.Create:
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
	out := make([]*backend.ChainChange, 0, len(builtin)+len(created)+len(rest))
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
