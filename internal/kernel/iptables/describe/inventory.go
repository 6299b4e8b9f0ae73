package describe

import (
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Inventory groups the owned rules of live by the service they serve: by
// a rule's own comment, else (a rule without one, as in kube-proxy's
// large-cluster mode) by its chain's service.
func (Describer) Inventory(prefix string, live map[backend.Family]*backend.Ruleset) *backend.Inventory {
	inv := &backend.Inventory{Services: map[string][]backend.Located{}}
	for _, f := range backend.Families {
		if live[f] == nil {
			continue
		}
		owned := live[f].Owned(prefix)
		owned.SortChains()
		index := serviceIndex(prefix, owned)
		for _, t := range owned.Tables {
			for _, ch := range t.Chains {
				if !ch.Builtin() {
					inv.Chains++
				}
				for _, r := range ch.Rules {
					inv.Rules++
					svc := ruleService(r)
					if svc == "" && !ch.Builtin() {
						svc = index[indexKey(t.Name, ch.Name)]
					}
					l := backend.Located{Family: f, Table: t.Name, Rule: r}
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
