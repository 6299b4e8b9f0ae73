package planner

import (
	"net/netip"
	"sort"
	"strconv"

	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
)

// StaleFlow names UDP conntrack entries to delete after an apply: those a
// service address (VIP:Port) or a node port (NodePort) DNATed to an
// endpoint the service no longer has. UDP has no connection to end, so
// without this a client keeps sending to the old endpoint for as long as
// it keeps the flow alive (kube-proxy's conntrack cleanup does the same).
type StaleFlow struct {
	Family   rules.Family
	Service  string
	VIP      netip.Addr // the service address; the zero Addr for a node port
	Port     int        // the service port
	NodePort int        // the node port, when VIP is the zero Addr
	Endpoint netip.Addr // the endpoint the entries were DNATed to
}

// StaleUDP lists the flows that the plan's removed UDP endpoints leave.
func StaleUDP(p *Plan) []StaleFlow {
	if !dropsUDPEndpoint(p) {
		return nil // a cold start or a TCP change: nothing to read through
	}
	var out []StaleFlow
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		before, after := udpEndpoints(p.Prefix, p.Live[f]), udpEndpoints(p.Prefix, p.Desired[f])
		addrs := udpAddresses(p.Prefix, p.Live[f])
		for svc, eps := range before {
			for ep := range eps {
				if after[svc][ep] {
					continue
				}
				ap, err := netip.ParseAddrPort(ep)
				if err != nil {
					continue
				}
				for _, a := range addrs[svc] {
					fl := a
					fl.Family, fl.Service, fl.Endpoint = f, svc, ap.Addr()
					out = append(out, fl)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Endpoint != b.Endpoint {
			return a.Endpoint.Less(b.Endpoint)
		}
		if a.VIP != b.VIP {
			return a.VIP.Less(b.VIP)
		}
		return a.Port+a.NodePort < b.Port+b.NodePort
	})
	return out
}

// dropsUDPEndpoint reports whether the plan deletes or rewrites a chain
// that DNATs UDP, the only way a UDP endpoint can go.
func dropsUDPEndpoint(p *Plan) bool {
	for _, c := range p.Changes {
		if c.Action == Create || c.Table != rules.TableNAT {
			continue
		}
		for _, r := range c.Before {
			if arg(r, "-p") == "udp" && arg(r, "--to-destination") != "" {
				return true
			}
		}
	}
	return false
}

func natRules(rs *rules.Ruleset) []rules.Rule {
	if rs == nil {
		return nil
	}
	t := rs.Table(rules.TableNAT)
	if t == nil {
		return nil
	}
	var out []rules.Rule
	for _, c := range t.Chains {
		out = append(out, c.Rules...)
	}
	return out
}

// udpEndpoints maps each service to the UDP endpoints (ip:port) its SEP
// chains DNAT to. Large-cluster mode drops SEP comments, so the service of
// a chain is its ServiceIndex entry, which follows the jumps into it.
func udpEndpoints(prefix string, rs *rules.Ruleset) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	if rs == nil || rs.Table(rules.TableNAT) == nil {
		return out
	}
	idx := ServiceIndex(prefix, &rules.Ruleset{Family: rs.Family, Tables: []*rules.Table{rs.Table(rules.TableNAT)}})
	for _, c := range rs.Table(rules.TableNAT).Chains {
		svc := idx[IndexKey(rules.TableNAT, c.Name)]
		for _, r := range c.Rules {
			if arg(r, "-p") != "udp" || arg(r, "--to-destination") == "" || svc == "" {
				continue
			}
			if out[svc] == nil {
				out[svc] = map[string]bool{}
			}
			out[svc][arg(r, "--to-destination")] = true
		}
	}
	return out
}

// udpAddresses maps each service to its UDP service addresses and node
// ports, from the rules that dispatch to it.
func udpAddresses(prefix string, rs *rules.Ruleset) map[string][]StaleFlow {
	out := map[string][]StaleFlow{}
	v := vocab.For(prefix)
	for _, r := range natRules(rs) {
		kind := v.KindOf(r.Chain)
		if arg(r, "-p") != "udp" || kind != vocab.Services && kind != vocab.NodePorts {
			continue
		}
		svc := RuleService(r)
		port, err := strconv.Atoi(arg(r, "--dport"))
		if svc == "" || err != nil {
			continue
		}
		if kind == vocab.NodePorts {
			if arg(r, "-d") == "" { // the 127.0.0.0/8 copy is the same flow
				out[svc] = append(out[svc], StaleFlow{NodePort: port})
			}
			continue
		}
		if pfx, err := netip.ParsePrefix(arg(r, "-d")); err == nil && pfx.IsSingleIP() {
			out[svc] = append(out[svc], StaleFlow{VIP: pfx.Addr(), Port: port})
		}
	}
	return out
}
