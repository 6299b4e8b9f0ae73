package engine

import (
	"fmt"
	"slices"

	"github.com/svcnat/svcnat/iptables"
	"github.com/svcnat/svcnat/rules"
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

// EnsureCanaries creates the canary chains of prefix that are missing,
// recording first the tables that creates (see noteCanaryTables).
func (e *Engine) EnsureCanaries(prefix string) error {
	if err := e.noteCanaryTables(prefix); err != nil {
		return err
	}
	return e.canaries(prefix, func(missing bool, r *rules.Restore, table, chain string) {
		if missing {
			r.Declare(table, chain)
		}
	})
}

// removeCanaries deletes the canary chains of prefix that are there:
// destroy leaves nothing of svcnat's behind.
func (e *Engine) removeCanaries(prefix string) error {
	return e.canaries(prefix, func(missing bool, r *rules.Restore, table, chain string) {
		if !missing {
			r.DeleteChain(table, chain)
		}
	})
}

// canaries builds, per family, what write adds for each table's canary
// (missing or not), and restores it in one transaction.
func (e *Engine) canaries(prefix string, write func(missing bool, r *rules.Restore, table, chain string)) error {
	if e.Kernel.Backend() == iptables.File {
		return nil
	}
	missing, err := e.MissingCanaries(prefix)
	if err != nil {
		return err
	}
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
