package describe

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// StaleUDP lists the flows that the plan's removed UDP endpoints leave:
// for each endpoint a service's UDP service or local chain (or endpoint
// chain, or its chainless port's vip-endpoints-udp elements) DNATs to
// live and no longer in desired, one flow per UDP address
// (service-ips) and node port (service-nodeports) live sends to that
// service, as the iptables describer lists them.
func (Describer) StaleUDP(p backend.Planned) []backend.StaleFlow {
	if !dropsUDPEndpoint(p) {
		return nil // a cold start or a TCP change: nothing to read through
	}
	name := backend.NFTTable(p.Prefix)
	var out []backend.StaleFlow
	for _, f := range backend.Families {
		dt, lt := tableOf(p.Desired[f], name), tableOf(p.Live[f], name)
		if lt == nil {
			continue
		}
		x := newIndex(dt, lt, p.ChainService)
		before, after := udpEndpoints(x, 1), udpEndpoints(x, 0)
		addrs := udpAddresses(x, lt)
		out = append(out, backend.StaleFlows(f, before, after, addrs)...)
	}
	backend.SortStaleFlows(out)
	return out
}

// dropsUDPEndpoint reports whether the plan deletes or rewrites a chain
// that DNATs UDP or removes or changes an element of a UDP endpoints
// map (endpoints-udp-N, vip-endpoints-udp), the only ways a UDP endpoint
// can go.
func dropsUDPEndpoint(p backend.Planned) bool {
	for _, c := range p.Changes {
		if c.Action == backend.Create {
			continue
		}
		if p, ok := endpointsMapOf(c.Chain); (ok && p == "udp" || c.Chain == vipEndpointsPrefix+"udp") && c.Kind == backend.KindMap {
			for op := range c.Lines() {
				if op == backend.DiffDelete {
					return true
				}
			}
			continue
		}
		if c.Kind != backend.KindChain {
			continue
		}
		for _, r := range c.Before {
			if isUDPDNAT(r.Text()) {
				return true
			}
		}
	}
	return false
}

func isUDPDNAT(rule string) bool {
	return strings.HasPrefix(rule, "meta l4proto udp dnat ")
}

// udpEndpoints maps each service to the UDP endpoints ("ip:port") its
// service, local and endpoint chains in table i DNAT to.
func udpEndpoints(x *index, i int) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	t := x.tables[i]
	if t == nil {
		return out
	}
	// A chainless port's endpoints are its vip-endpoints-udp elements.
	for k, base := range x.vipBase[i] {
		if !strings.Contains(k, " . udp . ") {
			continue
		}
		svc := x.byKey[k]
		if svc == "" {
			continue
		}
		for _, a := range x.vipEndpoints(i, x.vipKey[i][base]) {
			if out[svc] == nil {
				out[svc] = map[string]bool{}
			}
			out[svc][a] = true
		}
	}
	for _, c := range t.Chains {
		k, _ := perService(c.Name)
		if k != svcChain && k != localChain && k != epChain {
			continue
		}
		svc := x.objectService(c.Name)
		for _, r := range c.Rules {
			if svc == "" || !isUDPDNAT(r.Text()) {
				continue
			}
			if out[svc] == nil {
				out[svc] = map[string]bool{}
			}
			for _, a := range x.rangeEndpoints(i, r.Text()) {
				out[svc][a] = true
			}
			if a, ok := dnatTo(r.Text()); ok {
				out[svc][a] = true
				continue
			}
			for _, v := range mapValues(r.Text()) {
				if a, ok := addrDotPort(v); ok {
					out[svc][a] = true
				}
			}
		}
	}
	return out
}

// udpAddresses maps each service to its UDP service addresses and node
// ports in t, from the maps that dispatch to it.
func udpAddresses(x *index, t *backend.Table) map[string][]backend.StaleFlow {
	out := map[string][]backend.StaleFlow{}
	for _, m := range []string{serviceIPs, serviceNodePort} {
		c := t.Chain(m)
		if c == nil {
			continue
		}
		for _, r := range c.Rules {
			e := parseElement(r.Text())
			svc := x.elementService(m, e)
			if svc == "" || len(e.key) < 2 || e.key[len(e.key)-2] != "udp" {
				continue
			}
			port, err := strconv.Atoi(e.key[len(e.key)-1])
			if err != nil {
				continue
			}
			if m == serviceNodePort {
				out[svc] = append(out[svc], backend.StaleFlow{NodePort: port})
				continue
			}
			if a, err := netip.ParseAddr(e.key[0]); err == nil {
				out[svc] = append(out[svc], backend.StaleFlow{VIP: a, Port: port})
			}
		}
	}
	return out
}
