// Package describe is the iptables backend's backend.Describer: it reads
// kube-proxy's meaning back from the rules svcnat writes (chain names by
// vocab, comments, rule arguments) to say which service a chain serves,
// what a plan changes for each service, which UDP flows an apply leaves
// stale, and whether a saved plan's desired rules are ones render could
// have written. It reads rules it is given and never runs iptables.
package describe

import (
	"net/netip"
	"sort"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
)

// Describer is the iptables backend's backend.Describer: it reads
// kube-proxy's meaning back from chain names (vocab), comments and rule
// arguments.
type Describer struct{}

var _ backend.Describer = Describer{}

// Describe attributes the plan's changes to services and summarizes them
// by service in the things an operator names: endpoints, cluster IPs, node
// ports. Chains the renderer made are attributed by Planned.ChainService;
// every other chain (a live chain about to go, a saved plan's or a
// rollback's) by its rules (serviceIndex).
func (Describer) Describe(p backend.Planned) *backend.Description {
	d := &backend.Description{}
	if len(p.Changes) == 0 {
		return d
	}
	v := vocab.For(p.Prefix)
	service := make([]string, len(p.Changes))
	want, have := map[string]bool{}, map[string]bool{}
	for _, f := range backend.Families {
		li := serviceIndex(p.Prefix, p.Live[f])
		di := map[string]string{}
		if p.ChainService == nil {
			di = serviceIndex(p.Prefix, p.Desired[f])
		} else if nat := p.Desired[f].Table(rules.TableNAT); nat != nil {
			for chain, svc := range p.ChainService {
				if nat.Chain(chain) != nil {
					di[indexKey(rules.TableNAT, chain)] = svc
				}
			}
		}
		for i, c := range p.Changes {
			if c.Family != f {
				continue
			}
			k := indexKey(c.Table, c.Chain)
			service[i] = either(di[k], li[k])
		}
		if p.Desired[f] != nil {
			servicesOf(want, p.Desired[f], di)
		}
		if p.Live[f] != nil {
			servicesOf(have, p.Live[f], li)
		}
	}
	d.Chains = make([]backend.ChainOwner, len(p.Changes))
	for i, c := range p.Changes {
		d.Chains[i] = backend.ChainOwner{Service: service[i], Scope: chainScope(v, c, service[i])}
	}
	d.Services = summarize(v, p.Changes, service, want, have)
	return d
}

// chainScope says whose the changed chain c, of service svc ("" when
// none could be told), is.
func chainScope(v vocab.Vocab, c backend.ChainChange, svc string) backend.Scope {
	switch {
	case svc != "":
		return backend.ScopeService
	case c.Builtin || !v.KindOf(c.Chain).PerService():
		return backend.ScopeShared
	}
	return backend.ScopeUnknown
}

// either is a changed chain's service from its desired and live
// attribution: either when only one is known, "" when they differ.
func either(desired, live string) string {
	switch {
	case desired == "":
		return live
	case live == "" || live == desired:
		return desired
	}
	return ""
}

// summarize groups the chain changes by service; service holds the
// service of each change. want and have are the services with rules in the
// desired and the live rules.
func summarize(v vocab.Vocab, changes []backend.ChainChange, service []string, want, have map[string]bool) []backend.ServiceChange {
	type subject struct {
		s     backend.Subject
		value string
	}
	type seen struct{ added, removed bool }
	found := map[string]map[subject]*seen{}
	order := map[string][]subject{}
	note := func(svc string, s backend.Subject, value string, added bool) {
		if found[svc] == nil {
			found[svc] = map[subject]*seen{}
		}
		k := subject{s, value}
		w := found[svc][k]
		if w == nil {
			w = &seen{}
			found[svc][k] = w
			order[svc] = append(order[svc], k)
		}
		if added {
			w.added = true
		} else {
			w.removed = true
		}
	}
	for i, c := range changes {
		svc := service[i]
		switch {
		case svc != "" && !c.Builtin && c.Action != backend.Update && isEndpointChain(c):
			if c.Action == backend.Create {
				note(svc, backend.SubjectEndpoint, dnatTarget(c.After), true)
			} else {
				note(svc, backend.SubjectEndpoint, dnatTarget(c.Before), false)
			}
			continue
		case svc != "" && c.Action != backend.Update:
			s, value := chainSubject(v, c.Chain)
			note(svc, s, value, c.Action == backend.Create)
			continue
		}
		for op, r := range c.Lines() {
			if op == backend.DiffEqual {
				continue
			}
			rs := ruleService(r)
			if rs == "" {
				rs = svc
			}
			if rs != "" {
				s, value := describeRule(v, c.Table, r)
				note(rs, s, value, op == backend.DiffInsert)
			}
		}
	}
	var out []backend.ServiceChange
	for svc, subjects := range order {
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
				// Endpoint changes explain the load-balancing rules they
				// rewrite; those are named only when they stand alone.
				if endpoints && k.s == backend.SubjectChain && (k.value == string(vocab.SVC) || k.value == string(vocab.SVL)) {
					continue
				}
				w := found[svc][k]
				ch := backend.DetailRemoved
				switch {
				case w.added && w.removed:
					ch = backend.DetailChanged
				case w.added:
					ch = backend.DetailAdded
				}
				sc.Details = append(sc.Details, backend.Detail{Subject: k.s, Value: k.value, Change: ch})
			}
			// Endpoint changes first: they explain the rest.
			sort.SliceStable(sc.Details, func(i, j int) bool {
				return sc.Details[i].Subject == backend.SubjectEndpoint && sc.Details[j].Subject != backend.SubjectEndpoint
			})
		}
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// chainSubject names a per-service chain by its kind.
func chainSubject(v vocab.Vocab, chain string) (backend.Subject, string) {
	switch k := v.KindOf(chain); k {
	case vocab.SVC, vocab.SVL, vocab.EXT, vocab.FW:
		return backend.SubjectChain, string(k)
	}
	return backend.SubjectChainRules, chain
}

// describeRule says what a rule does for its service, from its comment
// and matches.
func describeRule(v vocab.Vocab, table string, r backend.Rule) (backend.Subject, string) {
	c := vocab.ParseComment(r.Comment())
	kind := v.KindOf(r.Chain)
	proto, port := r.Arg("-p"), r.Arg("--dport")
	switch {
	case c.Role == vocab.ClusterIP && kind == vocab.Services:
		return backend.SubjectClusterIP, address(r, port, proto)
	case c.Role == vocab.ExternalIP:
		return backend.SubjectExternalIP, address(r, port, proto)
	case c.Role == vocab.LoadBalancerIP && kind == vocab.Services:
		return backend.SubjectLoadBalancerIP, address(r, port, proto)
	case c.Role == vocab.HealthCheckNodePort:
		return backend.SubjectHealthCheckNodePort, port
	case kind == vocab.NodePorts && table == rules.TableNAT && r.Arg("-d") == "":
		return backend.SubjectNodePort, port + "/" + proto
	case c.Role == vocab.NoEndpoints:
		return backend.SubjectNoEndpointsReject, ""
	case c.Role == vocab.NoLocalEndpoints:
		return backend.SubjectNoLocalEndpointsDrop, ""
	case c.Role == vocab.NotAccepted:
		return backend.SubjectSourceRanges, ""
	}
	return chainSubject(v, r.Chain)
}

// address is "ip:port/proto" of a rule's destination ("[ip]:port/proto"
// for IPv6).
func address(r backend.Rule, port, proto string) string {
	dst := r.Arg("-d")
	if pfx, err := netip.ParsePrefix(dst); err == nil && pfx.IsSingleIP() {
		dst = pfx.Addr().String()
	}
	if strings.Contains(dst, ":") {
		return "[" + dst + "]:" + port + "/" + proto
	}
	return dst + ":" + port + "/" + proto
}

func isEndpointChain(c backend.ChainChange) bool {
	return dnatTarget(c.After) != "" || dnatTarget(c.Before) != ""
}

func dnatTarget(rs []backend.Rule) string {
	for _, r := range rs {
		if t := r.Arg("--to-destination"); t != "" {
			return t
		}
	}
	return ""
}
