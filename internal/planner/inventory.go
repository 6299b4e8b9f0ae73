package planner

import (
	"sort"

	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// Located is a rule with the family and table it lives in.
type Located struct {
	Family rules.Family
	Table  string
	Rule   rules.Rule
}

// Inventory is what svcnat owns in the live rules, grouped by service;
// Shared holds the rules that serve every service.
type Inventory struct {
	Chains   int // owned chains (built-in chains not counted)
	Rules    int
	Services map[string][]Located
	Shared   []Located
}

// Names returns the services in the inventory, sorted.
func (inv *Inventory) Names() []string {
	out := make([]string, 0, len(inv.Services))
	for n := range inv.Services {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Take groups the owned rules of live by the service they serve: by a
// rule's own comment, else (a rule without one, as in kube-proxy's
// large-cluster mode) by its chain's service.
func Take(live map[rules.Family]*rules.Ruleset, prefix string) *Inventory {
	inv := &Inventory{Services: map[string][]Located{}}
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		if live[f] == nil {
			continue
		}
		owned := live[f].Owned(prefix)
		owned.SortChains()
		index := ServiceIndex(prefix, owned)
		for _, t := range owned.Tables {
			for _, ch := range t.Chains {
				if !ch.Builtin() {
					inv.Chains++
				}
				for _, r := range ch.Rules {
					inv.Rules++
					svc := RuleService(r)
					if svc == "" && !ch.Builtin() {
						svc = index[IndexKey(t.Name, ch.Name)]
					}
					l := Located{Family: f, Table: t.Name, Rule: r}
					if svc == "" {
						inv.Shared = append(inv.Shared, l)
					} else {
						inv.Services[svc] = append(inv.Services[svc], l)
					}
				}
			}
		}
	}
	return inv
}
