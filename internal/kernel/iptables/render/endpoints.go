package render

import (
	"net/netip"
	"sort"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
)

// endpoint is one endpoint of one service port in one IP family, as
// kube-proxy's endpointInfo sees it.
type endpoint struct {
	addr        netip.Addr
	port        int
	str         string // ip:port as net.JoinHostPort writes it
	chain       string // SEP chain name
	local       bool
	ready       bool
	serving     bool
	terminating bool
}

// usable for cluster or local traffic in the fallback step of
// CategorizeEndpoints: serving and terminating.
func (e endpoint) servingTerminating() bool { return e.serving && e.terminating }

// portEndpoints returns the endpoints of port in family fam, deduplicated by
// ip:port and sorted as kube-proxy's byEndpoint does: by the ip:port string.
// Like the EndpointSlice cache, a duplicate that is local wins.
func portEndpoints(v vocab.Vocab, node string, fam rules.Family, svc *config.Service, port *config.Port) []endpoint {
	byStr := map[string]int{}
	var eps []endpoint
	for _, e := range svc.Endpoints {
		addr := e.Address.Unmap()
		if !inFamily(fam, addr) {
			continue
		}
		tp := e.TargetPort(port)
		ep := endpoint{
			addr:        addr,
			port:        tp,
			str:         vocab.EndpointString(addr, tp),
			chain:       v.EndpointChain(vocab.ServicePortName(svc.Name, port.Name), port.Protocol, vocab.EndpointString(addr, tp)),
			local:       node != "" && e.Node == node,
			ready:       e.Ready,
			serving:     e.Serving,
			terminating: e.Terminating,
		}
		if i, ok := byStr[ep.str]; ok {
			if ep.local {
				eps[i] = ep
			}
			continue
		}
		byStr[ep.str] = len(eps)
		eps = append(eps, ep)
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].str < eps[j].str })
	return eps
}

// categorized is the result of kube-proxy's proxy.CategorizeEndpoints for
// one service port.
type categorized struct {
	cluster   []endpoint // used with Cluster traffic policy
	local     []endpoint // used with Local traffic policy
	reachable []endpoint // every endpoint that gets a SEP chain
	hasAny    bool       // some endpoint anywhere is usable
}

// categorize mirrors proxy.CategorizeEndpoints without topology hints
// (svcnat has no zones): Cluster policy uses the ready endpoints, or when
// there is none the serving-and-terminating ones; Local policy likewise
// among the endpoints on this node. Endpoints that are neither ready nor
// serving-and-terminating never get rules.
func categorize(eps []endpoint, usesCluster, usesLocal bool) categorized {
	var c categorized
	if len(eps) == 0 {
		return c
	}
	if usesCluster {
		c.cluster = filterEndpoints(eps, func(e endpoint) bool { return e.ready })
		if len(c.cluster) == 0 {
			c.cluster = filterEndpoints(eps, endpoint.servingTerminating)
		}
		c.hasAny = len(c.cluster) > 0
	}
	if !usesLocal {
		c.reachable = c.cluster
		return c
	}
	var localReady, localServingTerminating bool
	for _, e := range eps {
		switch {
		case e.ready:
			c.hasAny = true
			localReady = localReady || e.local
		case e.servingTerminating():
			c.hasAny = true
			localServingTerminating = localServingTerminating || e.local
		}
	}
	fallback := false
	switch {
	case localReady:
		c.local = filterEndpoints(eps, func(e endpoint) bool { return e.local && e.ready })
	case localServingTerminating:
		fallback = true
		c.local = filterEndpoints(eps, func(e endpoint) bool { return e.local && e.servingTerminating() })
	}
	switch {
	case !usesCluster:
		c.reachable = c.local
	case !fallback:
		// Local holds only ready endpoints, and cluster holds every ready
		// endpoint, so cluster is a superset.
		c.reachable = c.cluster
	default:
		c.reachable = unionEndpoints(c.cluster, c.local)
	}
	return c
}

func filterEndpoints(eps []endpoint, keep func(endpoint) bool) []endpoint {
	var out []endpoint
	for _, e := range eps {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// unionEndpoints merges two sorted lists. kube-proxy merges through a map,
// so its order is random there; svcnat keeps byEndpoint order.
func unionEndpoints(a, b []endpoint) []endpoint {
	seen := map[string]bool{}
	var out []endpoint
	for _, e := range append(append([]endpoint(nil), a...), b...) {
		if !seen[e.str] {
			seen[e.str] = true
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].str < out[j].str })
	return out
}
