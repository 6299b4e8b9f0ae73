package planner

import (
	"net/netip"
	"sort"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
)

// Description is a plan in an operator's words: the service each changed
// chain serves, and what changes for each service. Views compute it from a
// plan when they print one; the plan itself stays a diff.
type Description struct {
	Services []ServiceChange
	service  map[changeKey]string
	vocab    vocab.Vocab
}

type changeKey struct {
	family       rules.Family
	table, chain string
}

// ChainService is the service the changed chain c serves, "" for a shared
// chain or one whose service cannot be told.
func (d *Description) ChainService(c ChainChange) string {
	return d.service[changeKey{c.Family, c.Table, c.Chain}]
}

// Scope says whose a changed chain is: one service's, every service's
// (shared), or nobody's that svcnat can tell.
type Scope string

// The scopes of a changed chain.
const (
	// ScopeService: the chain serves one service (ChainService).
	ScopeService Scope = "service"
	// ScopeShared: a built-in chain (its jump rules) or one of the chains
	// every service goes through: SERVICES, NODEPORTS, MARK-MASQ, ...
	ScopeShared Scope = "shared"
	// ScopeUnknown: a per-service chain whose service its rules do not
	// tell (no comments and no jump into it that names one, or a desired
	// and a live attribution that differ).
	ScopeUnknown Scope = "unknown"
)

// ChainScope says whose the changed chain c is; its service, for
// ScopeService, is ChainService's.
func (d *Description) ChainScope(c ChainChange) Scope {
	switch {
	case d.ChainService(c) != "":
		return ScopeService
	case c.Builtin || !d.vocab.KindOf(c.Chain).PerService():
		return ScopeShared
	}
	return ScopeUnknown
}

// ServiceChange is what a plan does to one service.
type ServiceChange struct {
	Name    string
	Action  Action   // Create and Delete: the whole service; Update: Details say what
	Details []Detail // for Update only, endpoints first
}

// Detail is one thing that changes for a service.
type Detail struct {
	Subject Subject
	// Value names the subject: an endpoint "10.64.1.4:8080", an address
	// "10.32.0.1:80/tcp", a port "30080/tcp", a chain kind (SubjectChain)
	// or a chain name (SubjectChainRules).
	Value  string
	Change Change
}

// Subject is what a Detail is about.
type Subject int

// The subjects of details.
const (
	SubjectEndpoint             Subject = iota + 1 // an endpoint, Value "ip:port"
	SubjectClusterIP                               // Value "ip:port/proto"
	SubjectExternalIP                              // Value "ip:port/proto"
	SubjectLoadBalancerIP                          // Value "ip:port/proto"
	SubjectNodePort                                // Value "port/proto"
	SubjectHealthCheckNodePort                     // Value "port"
	SubjectNoEndpointsReject                       // the REJECT of a service without endpoints
	SubjectNoLocalEndpointsDrop                    // the DROP of a Local policy without local endpoints
	SubjectSourceRanges                            // load-balancer source ranges
	SubjectChain                                   // a per-service chain, Value its vocab.Kind
	SubjectChainRules                              // rules of another chain, Value its name
)

// Change says how a Detail's subject changes.
type Change int

// The changes.
const (
	Added Change = iota + 1
	Removed
	Changed
)

// Describe attributes the plan's changes to services and summarizes them
// by service in the things an operator names: endpoints, cluster IPs, node
// ports. Chains the renderer made are attributed by Plan.ChainService;
// every other chain (a live chain about to go, a saved plan's or a
// rollback's) by its rules (ServiceIndex).
func Describe(p *Plan) *Description {
	d := &Description{service: map[changeKey]string{}, vocab: vocab.For(p.Prefix)}
	if p.Empty() {
		return d
	}
	want, have := map[string]bool{}, map[string]bool{}
	for _, f := range rules.Families {
		li := ServiceIndex(p.Prefix, p.Live[f])
		di := map[string]string{}
		if p.ChainService == nil {
			di = ServiceIndex(p.Prefix, p.Desired[f])
		} else if nat := p.Desired[f].Table(rules.TableNAT); nat != nil {
			for chain, svc := range p.ChainService {
				if nat.Chain(chain) != nil {
					di[IndexKey(rules.TableNAT, chain)] = svc
				}
			}
		}
		for _, c := range p.Changes {
			if c.Family != f {
				continue
			}
			k := IndexKey(c.Table, c.Chain)
			if s := either(di[k], li[k]); s != "" {
				d.service[changeKey{f, c.Table, c.Chain}] = s
			}
		}
		if p.Desired[f] != nil {
			servicesOf(want, p.Desired[f], di)
		}
		if p.Live[f] != nil {
			servicesOf(have, p.Live[f], li)
		}
	}
	d.Services = d.summarize(d.vocab, p.Changes, want, have)
	return d
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

// summarize groups the chain changes by service. want and have are the
// services with rules in the desired and the live rules.
func (d *Description) summarize(v vocab.Vocab, changes []ChainChange, want, have map[string]bool) []ServiceChange {
	type subject struct {
		s     Subject
		value string
	}
	type seen struct{ added, removed bool }
	found := map[string]map[subject]*seen{}
	order := map[string][]subject{}
	note := func(svc string, s Subject, value string, added bool) {
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
	for _, c := range changes {
		svc := d.ChainService(c)
		switch {
		case svc != "" && !c.Builtin && c.Action != Update && isEndpointChain(c):
			if c.Action == Create {
				note(svc, SubjectEndpoint, dnatTarget(c.After), true)
			} else {
				note(svc, SubjectEndpoint, dnatTarget(c.Before), false)
			}
			continue
		case svc != "" && c.Action != Update:
			s, value := chainSubject(v, c.Chain)
			note(svc, s, value, c.Action == Create)
			continue
		}
		for _, l := range c.Diff() {
			if l.Op == DiffEqual {
				continue
			}
			toks, err := rules.Tokenize(l.Text)
			if err != nil || len(toks) < 2 {
				continue
			}
			r := rules.Rule{Chain: toks[1], Args: toks[2:]}
			rs := RuleService(r)
			if rs == "" {
				rs = svc
			}
			if rs != "" {
				s, value := describeRule(v, c.Table, r)
				note(rs, s, value, l.Op == DiffInsert)
			}
		}
	}
	var out []ServiceChange
	for svc, subjects := range order {
		sc := ServiceChange{Name: svc, Action: Update}
		switch {
		case want[svc] && !have[svc]:
			sc.Action = Create
		case !want[svc] && have[svc]:
			sc.Action = Delete
		default:
			endpoints := false
			for _, k := range subjects {
				endpoints = endpoints || k.s == SubjectEndpoint
			}
			for _, k := range subjects {
				// Endpoint changes explain the load-balancing rules they
				// rewrite; those are named only when they stand alone.
				if endpoints && k.s == SubjectChain && (k.value == string(vocab.SVC) || k.value == string(vocab.SVL)) {
					continue
				}
				w := found[svc][k]
				ch := Removed
				switch {
				case w.added && w.removed:
					ch = Changed
				case w.added:
					ch = Added
				}
				sc.Details = append(sc.Details, Detail{Subject: k.s, Value: k.value, Change: ch})
			}
			// Endpoint changes first: they explain the rest.
			sort.SliceStable(sc.Details, func(i, j int) bool {
				return sc.Details[i].Subject == SubjectEndpoint && sc.Details[j].Subject != SubjectEndpoint
			})
		}
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// chainSubject names a per-service chain by its kind.
func chainSubject(v vocab.Vocab, chain string) (Subject, string) {
	switch k := v.KindOf(chain); k {
	case vocab.SVC, vocab.SVL, vocab.EXT, vocab.FW:
		return SubjectChain, string(k)
	}
	return SubjectChainRules, chain
}

// describeRule says what a rule does for its service, from its comment
// and matches.
func describeRule(v vocab.Vocab, table string, r rules.Rule) (Subject, string) {
	c := vocab.ParseComment(r.Comment())
	kind := v.KindOf(r.Chain)
	proto, port := arg(r, "-p"), arg(r, "--dport")
	switch {
	case c.Role == vocab.ClusterIP && kind == vocab.Services:
		return SubjectClusterIP, address(r, port, proto)
	case c.Role == vocab.ExternalIP:
		return SubjectExternalIP, address(r, port, proto)
	case c.Role == vocab.LoadBalancerIP && kind == vocab.Services:
		return SubjectLoadBalancerIP, address(r, port, proto)
	case c.Role == vocab.HealthCheckNodePort:
		return SubjectHealthCheckNodePort, port
	case kind == vocab.NodePorts && table == rules.TableNAT && arg(r, "-d") == "":
		return SubjectNodePort, port + "/" + proto
	case c.Role == vocab.NoEndpoints:
		return SubjectNoEndpointsReject, ""
	case c.Role == vocab.NoLocalEndpoints:
		return SubjectNoLocalEndpointsDrop, ""
	case c.Role == vocab.NotAccepted:
		return SubjectSourceRanges, ""
	}
	return chainSubject(v, r.Chain)
}

// address is "ip:port/proto" of a rule's destination ("[ip]:port/proto"
// for IPv6).
func address(r rules.Rule, port, proto string) string {
	dst := arg(r, "-d")
	if pfx, err := netip.ParsePrefix(dst); err == nil && pfx.IsSingleIP() {
		dst = pfx.Addr().String()
	}
	if strings.Contains(dst, ":") {
		return "[" + dst + "]:" + port + "/" + proto
	}
	return dst + ":" + port + "/" + proto
}

func isEndpointChain(c ChainChange) bool {
	return dnatTarget(c.After) != "" || dnatTarget(c.Before) != ""
}

func dnatTarget(rs []rules.Rule) string {
	for _, r := range rs {
		if t := arg(r, "--to-destination"); t != "" {
			return t
		}
	}
	return ""
}

// arg returns the value of a rule's non-negated option name, or "".
func arg(r rules.Rule, name string) string {
	for i := 0; i+1 < len(r.Args); i++ {
		if r.Args[i] == name && (i == 0 || r.Args[i-1] != "!") {
			return r.Args[i+1]
		}
	}
	return ""
}
