// Package describe is the nftables backend's backend.Describer: it reads
// kube-proxy's meaning back from the table svcnat writes (the renderer's
// object names, the shared maps' elements, and the service chains' ranges
// of the endpoints maps and affinity rules; a chainless port's
// commented service-ips element and its vip-endpoints elements, keyed by
// its cluster IP and port) to say which service an object or element serves, what a plan
// changes for each service, which UDP flows an apply leaves stale, and
// whether a saved plan's desired objects are ones the renderer could have
// written. It says a change in the words the iptables backend's describer
// uses for the same configuration change, so that the views read alike
// whatever the backend. It reads objects it is given and never runs nft.
package describe

import (
	"sort"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Describer is the nftables backend's backend.Describer.
type Describer struct{}

var _ backend.Describer = Describer{}

// Describe attributes the plan's changes to services and summarizes them
// by service in the things an operator names: endpoints (a service or
// local chain's range of an endpoints map and its affinity rules' DNATs), cluster, external and
// load-balancer IPs (service-ips, firewall-ips), node ports
// (service-nodeports), the no-endpoint REJECT and DROP (no-endpoint-*)
// and source ranges (firewall chains). A per-service object is its
// service's; a fixed object, whose elements may serve many services, is
// shared, and each service's part of it is listed under that service.
func (Describer) Describe(p backend.Planned) *backend.Description {
	d := &backend.Description{}
	if len(p.Changes) == 0 {
		return d
	}
	table := backend.NFTTable(p.Prefix)
	d.Chains = make([]backend.ChainOwner, len(p.Changes))
	s := newSummary()
	want, have := map[string]bool{}, map[string]bool{}
	for _, f := range backend.Families {
		dt, lt := tableOf(p.Desired[f], table), tableOf(p.Live[f], table)
		x := newIndex(dt, lt, p.ChainService)
		touched := map[string]string{} // bases whose endpoints may change → service
		for i, c := range p.Changes {
			if c.Family != f {
				continue
			}
			d.Chains[i] = s.change(x, c, touched, c.Table == table)
		}
		for base, svc := range touched {
			before, after := x.endpoints(1, base), x.endpoints(0, base)
			for _, ep := range sortedKeys(before) {
				if !after[ep] {
					s.note(svc, backend.SubjectEndpoint, ep, false)
				}
			}
			for _, ep := range sortedKeys(after) {
				if !before[ep] {
					s.note(svc, backend.SubjectEndpoint, ep, true)
				}
			}
		}
		x.services(want, dt)
		x.services(have, lt)
	}
	d.Services = s.services(want, have)
	return d
}

// tableOf is svcnat's table of rs, nil when there is none.
func tableOf(rs *backend.Ruleset, table string) *backend.Table {
	if rs == nil {
		return nil
	}
	return rs.Table(table)
}

// change notes what one change does for the services it touches and says
// whose it is. touched gathers the bases of the service and local chains
// it changes, whose endpoints Describe compares afterwards.
func (s *summary) change(x *index, c backend.ChainChange, touched map[string]string, owned bool) backend.ChainOwner {
	if !owned {
		return backend.ChainOwner{Scope: backend.ScopeUnknown}
	}
	kind, base := perService(c.Chain)
	if kind == notPerService {
		if c.Kind != backend.KindChain {
			s.elements(x, c, touched)
		}
		// A dispatch chain made or dropped for one service's ports alone
		// is that service's change (as the inventory has it).
		if i := map[backend.Action]int{backend.Create: 0, backend.Delete: 1}[c.Action]; isDispatch(c.Chain) && c.Action != backend.Update {
			if u := x.dispatchUsers(i, c.Chain); len(u) == 1 {
				return backend.ChainOwner{Service: u[0], Scope: backend.ScopeService}
			}
		}
		return backend.ChainOwner{Scope: backend.ScopeShared}
	}
	svc := x.objectService(c.Chain)
	if svc == "" {
		return backend.ChainOwner{Scope: backend.ScopeUnknown}
	}
	if kind == svcChain || kind == localChain {
		touched[base] = svc
	}
	switch {
	case kind == epChain || kind == affinitySet:
		// An endpoint chain's DNAT is an endpoint of its service chain's
		// verdict map, compared there; an affinity set is the endpoint's.
		if kind == epChain && c.Action == backend.Update {
			for op := range c.Lines() {
				if op != backend.DiffEqual {
					s.note(svc, backend.SubjectChainRules, c.Chain, op == backend.DiffInsert)
				}
			}
		}
	case kind == svcChain && (c.Action == backend.Delete && x.vipKey[0][base] != "" || c.Action == backend.Create && x.vipKey[1][base] != ""):
		// The port becomes chainless, or stops being: its endpoints
		// move between the chain's range and the vip-endpoints map,
		// which the endpoints' comparison sees; iptables' SVC chain
		// stays.
	case c.Action != backend.Update:
		s.note(svc, backend.SubjectChain, iptablesKind(kind), c.Action == backend.Create)
	default:
		subject, value := backend.SubjectChain, iptablesKind(kind)
		if kind == fwChain {
			// A firewall chain is one rule: the source ranges it lets in.
			subject, value = backend.SubjectSourceRanges, ""
		}
		for op := range c.Lines() {
			if op != backend.DiffEqual {
				s.note(svc, subject, value, op == backend.DiffInsert)
			}
		}
	}
	return backend.ChainOwner{Service: svc, Scope: backend.ScopeService}
}

// elements notes the element changes of a shared set or map for the
// services they serve. An endpoints map's element is an endpoint of the
// chain whose range holds it: that chain's base joins touched, whose
// endpoints Describe compares.
func (s *summary) elements(x *index, c backend.ChainChange, touched map[string]string) {
	for op, r := range c.Lines() {
		if op == backend.DiffEqual {
			continue
		}
		added := op == backend.DiffInsert
		e := parseElement(r.Text())
		if strings.HasPrefix(c.Chain, vipEndpointsPrefix) {
			if base := x.vipBaseOf(c.Chain, e, added); base != "" {
				if svc := x.elementService(c.Chain, e); svc != "" {
					touched[base] = svc
				}
			}
			continue
		}
		if isEndpointsMap(c.Chain) {
			if key, err := strconv.ParseUint(e.keyString(), 10, 32); err == nil {
				chain := x.rangeChain(key, added)
				if svc := x.objectService(chain); svc != "" {
					_, base := perService(chain)
					touched[base] = svc
				}
			}
			continue
		}
		svc := x.elementService(c.Chain, e)
		if svc == "" {
			continue
		}
		switch c.Chain {
		case serviceIPs:
			k, _ := perService(e.target())
			key := e.keyString()
			for i := range 2 {
				if b := x.vipBase[i][key]; b != "" {
					touched[b] = svc
				}
			}
			switch {
			case x.internal(key):
				// The cluster IP stays: its chainless port's dispatch
				// chain changes with its endpoint count, or the port
				// gets or loses its chain; the endpoints tell.
			case k == svcChain || k == localChain || isDispatch(e.target()):
				s.note(svc, backend.SubjectClusterIP, address(e.key), added)
			case x.firewalled[e.keyString()]:
				s.note(svc, backend.SubjectLoadBalancerIP, address(e.key), added)
			default:
				// An external IP and a load-balancer IP without source
				// ranges go the same way: nothing tells them apart.
				s.note(svc, backend.SubjectExternalIP, address(e.key), added)
			}
		case firewallIPs:
			// A load-balancer IP coming under or leaving its source
			// ranges changes how it is served; one that comes or goes
			// with them is also a service-ips change.
			k := e.keyString()
			if x.dispatched[0][k] && x.dispatched[1][k] {
				s.note(svc, backend.SubjectLoadBalancerIP, address(e.key), true)
				s.note(svc, backend.SubjectLoadBalancerIP, address(e.key), false)
			} else {
				s.note(svc, backend.SubjectLoadBalancerIP, address(e.key), added)
			}
		case serviceNodePort:
			if len(e.key) == 2 {
				s.note(svc, backend.SubjectNodePort, e.key[1]+"/"+e.key[0], added)
			}
		case noEndpointSvcs, noEndpointNPs:
			if e.verdict == "drop" {
				s.note(svc, backend.SubjectNoLocalEndpointsDrop, "", added)
			} else {
				s.note(svc, backend.SubjectNoEndpointsReject, "", added)
			}
		}
		// cluster-ips changes with the cluster IP's service-ips or
		// no-endpoint-services entry, which names it with its port;
		// hairpin-connections with the endpoints, compared in the
		// service chains.
	}
}

// summary collects what changes for each service, in the order found.
type summary struct {
	found map[string]map[subject]*seen
	order map[string][]subject
}

type subject struct {
	s     backend.Subject
	value string
}

type seen struct{ added, removed bool }

func newSummary() *summary {
	return &summary{found: map[string]map[subject]*seen{}, order: map[string][]subject{}}
}

func (s *summary) note(svc string, sub backend.Subject, value string, added bool) {
	if s.found[svc] == nil {
		s.found[svc] = map[subject]*seen{}
	}
	k := subject{sub, value}
	w := s.found[svc][k]
	if w == nil {
		w = &seen{}
		s.found[svc][k] = w
		s.order[svc] = append(s.order[svc], k)
	}
	if added {
		w.added = true
	} else {
		w.removed = true
	}
}

// services is the summary per service, as the iptables describer gives
// it: a service only desired is created, one only live deleted, both
// without details; an updated one lists its endpoints first, and the
// rewrite of its service or local chain only when no endpoint explains it.
func (s *summary) services(want, have map[string]bool) []backend.ServiceChange {
	var out []backend.ServiceChange
	for svc, subjects := range s.order {
		sc := backend.ServiceChange{Name: svc, Action: backend.Update}
		switch {
		case want[svc] && !have[svc]:
			sc.Action = backend.Create
		case !want[svc] && have[svc]:
			sc.Action = backend.Delete
		default:
			endpoints := false
			for _, k := range subjects {
				endpoints = endpoints || k.s == backend.SubjectEndpoint
			}
			for _, k := range subjects {
				if endpoints && k.s == backend.SubjectChain && (k.value == "SVC" || k.value == "SVL") {
					continue
				}
				w := s.found[svc][k]
				ch := backend.DetailRemoved
				switch {
				case w.added && w.removed:
					ch = backend.DetailChanged
				case w.added:
					ch = backend.DetailAdded
				}
				sc.Details = append(sc.Details, backend.Detail{Subject: k.s, Value: k.value, Change: ch})
			}
			sort.SliceStable(sc.Details, func(i, j int) bool {
				return sc.Details[i].Subject == backend.SubjectEndpoint && sc.Details[j].Subject != backend.SubjectEndpoint
			})
		}
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
