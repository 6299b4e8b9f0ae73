package describe

import (
	"net/netip"
	"strconv"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
)

// StaleUDP lists the flows that the plan's removed UDP endpoints leave.
func (Describer) StaleUDP(p backend.Planned) []backend.StaleFlow {
	if !dropsUDPEndpoint(p) {
		return nil // a cold start or a TCP change: nothing to read through
	}
	var out []backend.StaleFlow
	for _, f := range backend.Families {
		before, after := udpEndpoints(p.Prefix, p.Live[f]), udpEndpoints(p.Prefix, p.Desired[f])
		addrs := udpAddresses(p.Prefix, p.Live[f])
		out = append(out, backend.StaleFlows(f, before, after, addrs)...)
	}
	backend.SortStaleFlows(out)
	return out
}

// dropsUDPEndpoint reports whether the plan deletes or rewrites a chain
// that DNATs UDP, the only way a UDP endpoint can go.
func dropsUDPEndpoint(p backend.Planned) bool {
	for _, c := range p.Changes {
		if c.Action == backend.Create || c.Table != rules.TableNAT {
			continue
		}
		for _, r := range c.Before {
			if r.Arg("-p") == "udp" && r.Arg("--to-destination") != "" {
				return true
			}
		}
	}
	return false
}

func natRules(rs *backend.Ruleset) []backend.Rule {
	if rs == nil {
		return nil
	}
	t := rs.Table(rules.TableNAT)
	if t == nil {
		return nil
	}
	var out []backend.Rule
	for _, c := range t.Chains {
		out = append(out, c.Rules...)
	}
	return out
}

// udpEndpoints maps each service to the UDP endpoints (ip:port) its SEP
// chains DNAT to. Large-cluster mode drops SEP comments, so the service of
// a chain is its serviceIndex entry, which follows the jumps into it.
func udpEndpoints(prefix string, rs *backend.Ruleset) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	if rs == nil || rs.Table(rules.TableNAT) == nil {
		return out
	}
	idx := serviceIndex(prefix, &backend.Ruleset{Family: rs.Family, Tables: []*backend.Table{rs.Table(rules.TableNAT)}})
	for _, c := range rs.Table(rules.TableNAT).Chains {
		svc := idx[indexKey(rules.TableNAT, c.Name)]
		for _, r := range c.Rules {
			if r.Arg("-p") != "udp" || r.Arg("--to-destination") == "" || svc == "" {
				continue
			}
			if out[svc] == nil {
				out[svc] = map[string]bool{}
			}
			out[svc][r.Arg("--to-destination")] = true
		}
	}
	return out
}

// udpAddresses maps each service to its UDP service addresses and node
// ports, from the rules that dispatch to it.
func udpAddresses(prefix string, rs *backend.Ruleset) map[string][]backend.StaleFlow {
	out := map[string][]backend.StaleFlow{}
	v := vocab.For(prefix)
	for _, r := range natRules(rs) {
		kind := v.KindOf(r.Chain)
		if r.Arg("-p") != "udp" || kind != vocab.Services && kind != vocab.NodePorts {
			continue
		}
		svc := ruleService(r)
		port, err := strconv.Atoi(r.Arg("--dport"))
		if svc == "" || err != nil {
			continue
		}
		if kind == vocab.NodePorts {
			if r.Arg("-d") == "" { // the 127.0.0.0/8 copy is the same flow
				out[svc] = append(out[svc], backend.StaleFlow{NodePort: port})
			}
			continue
		}
		if pfx, err := netip.ParsePrefix(r.Arg("-d")); err == nil && pfx.IsSingleIP() {
			out[svc] = append(out[svc], backend.StaleFlow{VIP: pfx.Addr(), Port: port})
		}
	}
	return out
}
