package describe

import (
	"slices"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Inventory groups the rules and elements of svcnat's table in live by
// the service they serve: a per-service object's by its name, a shared
// map's element by the chain its verdict names or its key; the rest (the
// fixed chains' rules, nodeport-ips, hairpin-connections) is shared.
// Every object of the table is svcnat's and counts as a chain.
func (Describer) Inventory(prefix string, live map[backend.Family]*backend.Ruleset) *backend.Inventory {
	inv := &backend.Inventory{Services: map[string][]backend.Located{}}
	name := backend.NFTTable(prefix)
	for _, f := range backend.Families {
		t := tableOf(live[f], name)
		if t == nil {
			continue
		}
		x := newIndex(nil, t, nil)
		for _, c := range sortedObjects(t) {
			inv.Chains++
			svc := x.objectService(c.Name)
			for _, r := range c.Rules {
				inv.Rules++
				s := svc
				if s == "" && c.Kind != backend.KindChain {
					s = x.elementService(c.Name, parseElement(r.Text()))
				}
				l := backend.Located{Family: f, Table: t.Name, Rule: r}
				if s == "" {
					inv.Shared = append(inv.Shared, l)
				} else {
					inv.Services[s] = append(inv.Services[s], l)
				}
			}
		}
	}
	return inv
}

// sortedObjects are t's objects as the text form lists them: chains, sets,
// then maps, each by name.
func sortedObjects(t *backend.Table) []*backend.Chain {
	out := slices.Clone(t.Chains)
	sortByKind(out)
	return out
}
