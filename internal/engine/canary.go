package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/state"
)

// canaryTables are the tables svcnat writes, where reconcile keeps a
// canary chain (rules.Canary).
var canaryTables = []string{"nat", "filter"}

// Canary is where one canary chain lives.
type Canary struct {
	Family rules.Family
	Table  string
}

func (c Canary) String() string { return fmt.Sprintf("%s %s", c.Family, c.Table) }

// MissingCanaries returns the canary chains of prefix that are not there:
// one per table svcnat writes, in both families. Each is one read of one
// chain, far cheaper than a plan: reconcile looks often.
func (e *Engine) MissingCanaries(prefix string) ([]Canary, error) {
	var missing []Canary
	for _, f := range rules.Families {
		for _, t := range canaryTables {
			_, ok, err := e.Kernel.ListChain(f, t, rules.Canary(prefix))
			if err != nil {
				return nil, err
			}
			if !ok {
				missing = append(missing, Canary{f, t})
			}
		}
	}
	return missing, nil
}

// EnsureCanaries creates the canary chains of prefix that are missing.
// When none is, as at every reconcile pass but a first one or one after
// a flush, it costs one read of each canary and takes no lock. Else it
// records the tables that creating them creates (see noteCanaryTables)
// and creates them under one hold of the state lock (and the network
// namespace's, as every run that changes rules): a destroy in between
// would forget those tables, and the canaries would then make tables no
// record holds, which every later destroy would leave behind.
func (e *Engine) EnsureCanaries(prefix string) error {
	if e.Kernel.Backend() == iptables.File {
		return nil
	}
	missing, err := e.MissingCanaries(prefix)
	if err != nil || len(missing) == 0 {
		return err
	}
	d, err := state.Open(e.StateDir)
	if err != nil {
		return err
	}
	unlock, err := e.lock(context.Background(), d, e.LockTimeout)
	if err != nil {
		return err
	}
	defer unlock()
	// missing was read before the lock. Only a destroy (under the lock)
	// removes canaries, so the list can only miss some that a destroy
	// took meanwhile: the next pass creates those, and what this one
	// creates it records, against the live rules read now.
	if err := e.noteCanaryTables(d, prefix, missing); err != nil {
		return err
	}
	return e.canaries(prefix, missing, func(missing bool, r *rules.Restore, table, chain string) {
		if missing {
			r.Declare(table, chain)
		}
	})
}

// removeCanaries deletes the canary chains of prefix that are there:
// destroy leaves nothing of svcnat's behind.
func (e *Engine) removeCanaries(prefix string) error {
	if e.Kernel.Backend() == iptables.File {
		return nil
	}
	missing, err := e.MissingCanaries(prefix)
	if err != nil {
		return err
	}
	return e.canaries(prefix, missing, func(missing bool, r *rules.Restore, table, chain string) {
		if !missing {
			r.DeleteChain(table, chain)
		}
	})
}

// canaries builds, per family, what write adds for each table's canary
// (missing, by MissingCanaries, or not), and restores it in one
// transaction.
func (e *Engine) canaries(prefix string, missing []Canary, write func(missing bool, r *rules.Restore, table, chain string)) error {
	for _, f := range rules.Families {
		var r rules.Restore
		for _, t := range canaryTables {
			write(slices.Contains(missing, Canary{f, t}), &r, t, rules.Canary(prefix))
		}
		if r.Empty() {
			continue
		}
		if err := e.Kernel.Restore(f, r.Bytes(), iptables.NoFlushTables); err != nil {
			return fmt.Errorf("canary chains (%s): %w", f, err)
		}
	}
	return nil
}
