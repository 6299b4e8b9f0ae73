package describe

import (
	"slices"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Inventory groups the rules and elements of svcnat's table in live by
// the service they serve: a per-service object's by its name, a shared
// map's element by the chain its verdict names or its key; the rest (the
// fixed chains' rules, nodeport-ips, hairpin-connections) is shared.
// A dispatch chain that one service's ports alone go to is that
// service's: it comes and goes with them (a health verdict that changes
// the service's endpoint count moves it to another); one that several
// services' ports go to is shared. Every object of the table is svcnat's
// and counts as a chain.
func (Describer) Inventory(prefix string, live map[backend.Family]*backend.Ruleset) *backend.Inventory {
	inv := &backend.Inventory{Services: map[string][]backend.Located{}}
	name := backend.NFTTable(prefix)
	for _, f := range backend.Families {
		t := tableOf(live[f], name)
		if t == nil {
			continue
		}
		x := newIndex(nil, t, nil)
		users := dispatchUsers(x, t)
		for _, c := range sortedObjects(t) {
			inv.Chains++
			svc := x.objectService(c.Name)
			if u := users[c.Name]; len(u) == 1 {
				for svc = range u {
				}
			}
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

// dispatchUsers are the services whose service-ips elements in t go to
// each dispatch chain.
func dispatchUsers(x *index, t *backend.Table) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	c := t.Chain(serviceIPs)
	if c == nil {
		return out
	}
	for _, r := range c.Rules {
		e := parseElement(r.Text())
		if !isDispatch(e.target()) {
			continue
		}
		if svc := x.elementService(serviceIPs, e); svc != "" {
			if out[e.target()] == nil {
				out[e.target()] = map[string]bool{}
			}
			out[e.target()][svc] = true
		}
	}
	return out
}
