package render

import (
	"fmt"
	"net/netip"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Verdicts returns every kind of rule Render writes into an owned chain
// with a target that is not a chain (ACCEPT, DROP, REJECT, DNAT, MARK,
// MASQUERADE, RETURN), for chain prefix prefix and family fam, in Render's
// canonical form, per table and chain. Render writes them itself, for
// services that take every path that writes one: no endpoints (REJECT),
// internal and external traffic policy Local with no local endpoint (DROP),
// load-balancer source ranges (the DROP of KUBE-PROXY-FIREWALL), a health
// check node port (the only ACCEPT outside KUBE-FORWARD), localhost node
// ports (KUBE-FIREWALL), each address kind (cluster, external and
// load-balancer IPs, a node port). So these rules, their addresses, ports,
// protocols, mark bit and comments aside, are the allow-list a saved
// plan's verdicts are held to (describe.Describer.CheckDesired), and a path render
// gains shows up here without a second list to keep.
func Verdicts(fam backend.Family, prefix string) (map[string]map[string][]backend.Rule, error) {
	s := config.Settings{ChainPrefix: prefix, LocalhostNodePorts: true, MasqueradeBit: 14}
	addr := func(v4, v6 string) netip.Addr {
		if fam == backend.IPv6 {
			return netip.MustParseAddr(v6)
		}
		return netip.MustParseAddr(v4)
	}
	ranges := []netip.Prefix{netip.PrefixFrom(addr("192.0.2.0", "2001:db8::"), 24)}
	port := func(n int) []*config.Port {
		return []*config.Port{{Protocol: "TCP", Port: n, TargetPort: n, NodePort: 30000 + n}}
	}
	// Its endpoint is on another node: internal and external policy
	// Local find none here.
	elsewhere := []*config.Endpoint{{Address: addr("10.64.0.2", "fd00::2"), Node: "elsewhere", Ready: true, Serving: true}}
	services := []*config.Service{{
		Name: "verdicts/none", Type: config.TypeLoadBalancer, Ports: port(1),
		ClusterIPs: []netip.Addr{addr("10.96.0.1", "fd01::1")}, ExternalIPs: []netip.Addr{addr("198.51.100.1", "2001:db8:1::1")},
		LoadBalancerIPs:       []netip.Addr{addr("203.0.113.1", "2001:db8:2::1")},
		ExternalTrafficPolicy: config.PolicyCluster, InternalTrafficPolicy: config.PolicyCluster, SessionAffinity: config.AffinityNone,
	}, {
		Name: "verdicts/local", Type: config.TypeLoadBalancer, Ports: port(2), Endpoints: elsewhere,
		ClusterIPs: []netip.Addr{addr("10.96.0.2", "fd01::2")}, ExternalIPs: []netip.Addr{addr("198.51.100.2", "2001:db8:1::2")},
		LoadBalancerIPs: []netip.Addr{addr("203.0.113.2", "2001:db8:2::2")}, LoadBalancerSourceRanges: ranges,
		ExternalTrafficPolicy: config.PolicyLocal, InternalTrafficPolicy: config.PolicyLocal, HealthCheckNodePort: 32000,
		SessionAffinity: config.AffinityClientIP, SessionAffinityTimeout: config.DefaultSessionAffinityTimeout,
	}, {
		Name: "verdicts/cluster", Type: config.TypeLoadBalancer, Ports: port(3), Endpoints: elsewhere,
		ClusterIPs:            []netip.Addr{addr("10.96.0.3", "fd01::3")},
		ExternalTrafficPolicy: config.PolicyCluster, InternalTrafficPolicy: config.PolicyCluster, SessionAffinity: config.AffinityNone,
	}}
	out := map[string]map[string][]backend.Rule{}
	// MASQUERADE with --random-fully and without.
	for _, random := range []bool{false, true} {
		res, err := Render(&config.Config{Settings: s, Services: services}, Options{Node: "here", RandomFully: random})
		if err != nil {
			return nil, err
		}
		rs := res.Rulesets[fam]
		if rs == nil {
			return nil, fmt.Errorf("no %s rules rendered", fam)
		}
		addVerdicts(out, rs)
	}
	return out, nil
}

func addVerdicts(out map[string]map[string][]backend.Rule, rs *backend.Ruleset) {
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			if c.Builtin() {
				continue
			}
			for _, r := range c.Rules {
				target := r.Target()
				if target == "" || t.Chain(target) != nil {
					continue
				}
				if out[t.Name] == nil {
					out[t.Name] = map[string][]backend.Rule{}
				}
				out[t.Name][c.Name] = append(out[t.Name][c.Name], r)
			}
		}
	}
}
