package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/state"
)

// Canary is where one canary chain lives.
type Canary struct {
	Family backend.Family
	Table  string
	Chain  string
}

func (c Canary) String() string { return fmt.Sprintf("%s %s", c.Family, c.Table) }

// canaries are the places of prefix's canary chains on this backend
// (backend.Canaries): per family, on iptables one in nat and in filter,
// on nftables one in svcnat's table.
func (e *Engine) canaryPlaces(prefix string) []backend.CanaryAt {
	return backend.Canaries(e.Kernel.Limits().Syntax, prefix)
}

// MissingCanaries returns the canary chains of prefix that are not there,
// or not as made: one per table svcnat writes, in both families. Each is
// one read of one chain, far cheaper than a plan: reconcile looks often.
func (e *Engine) MissingCanaries(prefix string) ([]Canary, error) {
	var missing []Canary
	for _, f := range backend.Families {
		for _, at := range e.canaryPlaces(prefix) {
			rules, ok, err := e.Kernel.ReadChain(f, at.Table, at.Chain)
			if err != nil {
				return nil, err
			}
			if !ok || !backend.EqualRules(rules, at.Rules) {
				missing = append(missing, Canary{f, at.Table, at.Chain})
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
	if e.Kernel.ReadOnly() {
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
	return e.canaries(prefix, missing, func(missing bool, c *backend.ChainChange) bool {
		c.Action = backend.Create
		return missing
	})
}

// removeCanaries deletes the canary chains of prefix that are there:
// destroy leaves nothing of svcnat's behind.
func (e *Engine) removeCanaries(prefix string) error {
	if e.Kernel.ReadOnly() {
		return nil
	}
	missing, err := e.MissingCanaries(prefix)
	if err != nil {
		return err
	}
	return e.canaries(prefix, missing, func(missing bool, c *backend.ChainChange) bool {
		c.Action = backend.Delete
		return !missing
	})
}

// canaries runs, per family, one transaction of the changes change makes
// to each table's canary chain (missing, by MissingCanaries, or not) and
// keeps (true).
func (e *Engine) canaries(prefix string, missing []Canary, change func(missing bool, c *backend.ChainChange) bool) error {
	for _, f := range backend.Families {
		tx := &backend.Transaction{Family: f}
		for _, at := range e.canaryPlaces(prefix) {
			c := &backend.ChainChange{Family: f, Table: at.Table, Chain: at.Chain}
			if change(slices.Contains(missing, Canary{f, at.Table, at.Chain}), c) {
				// Made whole, or removed with what it holds; a canary
				// left flushed on nftables is made again in place.
				switch c.Action {
				case backend.Create:
					c.After = at.Rules
				case backend.Delete:
					c.Before = at.Rules
				}
				tx.Changes = append(tx.Changes, c)
			}
		}
		if len(tx.Changes) == 0 {
			continue
		}
		if err := e.Kernel.Run(tx); err != nil {
			return fmt.Errorf("canary chains (%s): %w", f, err)
		}
	}
	return nil
}
