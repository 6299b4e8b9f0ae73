package iptables

import (
	"fmt"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// write writes tx as one iptables-restore --noflush payload (see
// rules.Restore). Per table: every chain it names is declared (which
// creates or flushes it), svcnat's jumps in built-in chains are deleted
// and inserted again at the top in the desired order, written chains are
// filled, and deleted chains are deleted last, after the rules that
// referenced them are gone. Nothing else is named, so nothing else
// changes. The payload is nil when tx has nothing to do.
func write(tx *backend.Transaction) {
	r := &rules.Restore{}
	size := map[string]int{}
	for _, c := range tx.Changes {
		if !c.Builtin {
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
	for _, c := range tx.Changes {
		if c.Builtin {
			for _, rule := range c.Before {
				r.Delete(c.Table, rule)
			}
			for i := len(c.After) - 1; i >= 0; i-- {
				r.Insert(c.Table, 1, c.After[i])
			}
			continue
		}
		r.Declare(c.Table, c.Chain)
		if c.Action == backend.Delete {
			r.DeleteChain(c.Table, c.Chain)
			continue
		}
		for _, rule := range c.After {
			r.Append(c.Table, rule)
		}
	}
	tx.Payload, tx.Lines = r.Bytes(), r.Lines()
}

// runTx runs tx on k (writing it first if it was not): one
// iptables-restore --noflush, none when tx has nothing to do.
func runTx(k Interface, tx *backend.Transaction) error {
	if tx.Payload == nil {
		k.Write(tx)
	}
	if tx.Lines == 0 {
		return nil
	}
	return k.Restore(tx.Family, tx.Payload, NoFlushTables)
}

// readOnly is a Dump's answer to every change.
func readOnly(f backend.Family) error {
	return fmt.Errorf("restoring %s rules: %w", f, backend.ErrReadOnly)
}
