package iptables

import (
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
	return backend.StageTransactions(fam, creationOrder(changes), batch, func(c *backend.ChainChange) bool {
		return c.Action == backend.Create && !c.Builtin
	})
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
// So created chains come in backend.DependencyOrder (SERVICES first on a
// cold start, else a new service's SVC or EXT chain, then what it jumps
// to): a service's endpoint chains, then the chains that jump to them,
// service by service. Built-in chains come first and the changed and
// deleted chains last, in the order given.
func creationOrder(changes []backend.ChainChange) []*backend.ChainChange {
	var builtin, created, rest []*backend.ChainChange
	for i := range changes {
		c := &changes[i]
		switch {
		case c.Builtin:
			builtin = append(builtin, c)
		case c.Action == backend.Create:
			created = append(created, c)
		default:
			rest = append(rest, c)
		}
	}
	ordered := backend.DependencyOrder(created, func(c *backend.ChainChange) []backend.ChainRef {
		var refs []backend.ChainRef
		for _, r := range c.After {
			if t := r.Target(); t != "" {
				refs = append(refs, backend.ChainRef{Table: c.Table, Chain: t})
			}
		}
		return refs
	})
	out := make([]*backend.ChainChange, 0, len(changes))
	out = append(append(append(out, builtin...), ordered...), rest...)
	return out
}
