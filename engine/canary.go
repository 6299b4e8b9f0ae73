package engine

import (
	"fmt"
	"slices"
	"strings"

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

// EnsureCanaries creates the canary chains of prefix that are missing.
func (e *Engine) EnsureCanaries(prefix string) error {
	return e.canaries(prefix, func(missing bool, b *strings.Builder, t, chain string) {
		if missing {
			fmt.Fprintf(b, "*%s\n:%s - [0:0]\nCOMMIT\n", t, chain)
		}
	})
}

// removeCanaries deletes the canary chains of prefix that are there:
// destroy leaves nothing of svcnat's behind.
func (e *Engine) removeCanaries(prefix string) error {
	return e.canaries(prefix, func(missing bool, b *strings.Builder, t, chain string) {
		if !missing {
			fmt.Fprintf(b, "*%s\n-X %s\nCOMMIT\n", t, chain)
		}
	})
}

// canaries writes, per family, what line adds for each table's canary
// (missing or not), in one restore.
func (e *Engine) canaries(prefix string, line func(missing bool, b *strings.Builder, table, chain string)) error {
	if e.Kernel.Backend() == iptables.File {
		return nil
	}
	missing, err := e.MissingCanaries(prefix)
	if err != nil {
		return err
	}
	for _, f := range rules.Families {
		var b strings.Builder
		for _, t := range canaryTables {
			line(slices.Contains(missing, Canary{f, t}), &b, t, rules.Canary(prefix))
		}
		if b.Len() == 0 {
			continue
		}
		if err := e.Kernel.Restore(f, []byte(b.String()), iptables.NoFlushTables); err != nil {
			return fmt.Errorf("canary chains (%s): %w", f, err)
		}
	}
	return nil
}
