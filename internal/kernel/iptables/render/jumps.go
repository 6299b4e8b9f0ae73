package render

import (
	"fmt"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// BuiltinJumps returns every rule Render may write into a built-in chain
// for chain prefix prefix and family fam, in Render's canonical form, per
// table: kube-proxy's jumps from the built-in chains into the fixed chains,
// KUBE-FIREWALL's included (only IPv4 with localhost node ports has them).
// No other rule of svcnat's is ever in a built-in chain, so these lines
// are the allow-list a saved plan's built-in chains are held to
// (describe.Describer.CheckDesired).
func BuiltinJumps(fam backend.Family, prefix string) (map[string][]backend.Rule, error) {
	// No node_port_addresses means every address, loopback included:
	// the settings with which the most jumps are written.
	s := config.Settings{ChainPrefix: prefix, LocalhostNodePorts: true}
	b := newBuilder(fam, &s, Options{}, map[string]string{})
	b.builtinJumpRules()
	out := map[string][]backend.Rule{}
	for _, t := range b.rs.Tables {
		for _, c := range t.Chains {
			if !c.Builtin() {
				continue
			}
			for _, r := range c.Rules {
				cr, err := rules.CanonicalRule(fam, r)
				if err != nil {
					return nil, fmt.Errorf("canonicalizing %s %s jump: %w", fam, t.Name, err)
				}
				out[t.Name] = append(out[t.Name], cr)
			}
		}
	}
	return out, nil
}
