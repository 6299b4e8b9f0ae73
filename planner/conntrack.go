package planner

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/rules"
)

// StaleFlow names UDP conntrack entries to delete after an apply: those a
// service address (VIP:Port) or a node port (NodePort) DNATed to an
// endpoint the service no longer has. UDP has no connection to end, so
// without this a client keeps sending to the old endpoint for as long as
// it keeps the flow alive (kube-proxy's conntrack cleanup does the same).
type StaleFlow struct {
	Family   rules.Family
	Service  string
	VIP      string // "" for a node port
	Port     int
	NodePort int
	Endpoint string // the endpoint IP the entries were DNATed to
}

// StaleUDP lists the flows that the plan's removed UDP endpoints leave.
func StaleUDP(p *Plan) []StaleFlow {
	var out []StaleFlow
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		before, after := udpEndpoints(p.Live[f]), udpEndpoints(p.Desired[f])
		addrs := udpAddresses(p.Live[f])
		for svc, eps := range before {
			for ep := range eps {
				if after[svc][ep] {
					continue
				}
				ip := endpointIP(ep)
				for _, a := range addrs[svc] {
					fl := a
					fl.Family, fl.Service, fl.Endpoint = f, svc, ip
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
			return a.Endpoint < b.Endpoint
		}
		if a.VIP != b.VIP {
			return a.VIP < b.VIP
		}
		return a.Port+a.NodePort < b.Port+b.NodePort
	})
	return out
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

func arg(r rules.Rule, name string) string {
	for i := 0; i+1 < len(r.Args); i++ {
		if r.Args[i] == name && (i == 0 || r.Args[i-1] != "!") {
			return r.Args[i+1]
		}
	}
	return ""
}

// udpEndpoints maps each service to the UDP endpoints (ip:port) its SEP
// chains DNAT to. Large-cluster mode drops SEP comments, so the service of
// a chain is its ServiceIndex entry, which follows the jumps into it.
func udpEndpoints(rs *rules.Ruleset) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	if rs == nil || rs.Table(rules.TableNAT) == nil {
		return out
	}
	idx := ServiceIndex(&rules.Ruleset{Family: rs.Family, Tables: []*rules.Table{rs.Table(rules.TableNAT)}})
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
func udpAddresses(rs *rules.Ruleset) map[string][]StaleFlow {
	out := map[string][]StaleFlow{}
	for _, r := range natRules(rs) {
		if arg(r, "-p") != "udp" || !strings.HasSuffix(r.Chain, "-SERVICES") && !strings.HasSuffix(r.Chain, "-NODEPORTS") {
			continue
		}
		svc := RuleService(r)
		port, err := strconv.Atoi(arg(r, "--dport"))
		if svc == "" || err != nil {
			continue
		}
		if strings.HasSuffix(r.Chain, "-NODEPORTS") {
			if arg(r, "-d") == "" { // the 127.0.0.0/8 copy is the same flow
				out[svc] = append(out[svc], StaleFlow{NodePort: port})
			}
			continue
		}
		if pfx, err := netip.ParsePrefix(arg(r, "-d")); err == nil && pfx.IsSingleIP() {
			out[svc] = append(out[svc], StaleFlow{VIP: pfx.Addr().String(), Port: port})
		}
	}
	return out
}

func endpointIP(hostport string) string {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return ap.Addr().String()
	}
	return hostport
}
