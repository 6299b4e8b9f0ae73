package planner

import (
	"sort"
	"strings"

	"github.com/svcnat/svcnat/rules"
)

// sharedComments are the comments of rules that serve every service; a
// rule with one of them belongs to no single service.
var sharedComments = map[string]bool{}

func init() {
	for _, who := range []string{"kubernetes", "svcnat"} {
		for _, what := range []string{
			"service portals", "externally-visible service portals", "health check service ports",
			"forwarding rules", "load balancer firewall", "postrouting rules",
			"service traffic requiring SNAT", "forwarding conntrack rule",
			"service nodeports; NOTE: this must be the last rule in this chain",
		} {
			sharedComments[who+" "+what] = true
		}
	}
	sharedComments["block incoming localnet connections"] = true
}

// phrased are the comments kube-proxy writes with the service-port name in
// the middle.
var phrased = []string{
	"masquerade traffic for ", "pod traffic for ", "masquerade LOCAL traffic for ",
	"route LOCAL traffic for ", "other traffic to ",
}

// CommentService returns the service a rule comment names ("ns/name" of
// kube-proxy's "ns/name:port ..."), or "" for shared rules. Comments are
// the only place the service survives in a live dump: chain names are hashes.
func CommentService(c string) string {
	if c == "" || sharedComments[c] {
		return ""
	}
	for _, p := range phrased {
		if strings.HasPrefix(c, p) {
			c = strings.TrimPrefix(c, p)
			break
		}
	}
	name, _, _ := strings.Cut(c, " ")
	name, _, _ = strings.Cut(name, ":")
	return name
}

// RuleService returns the service a rule serves, or "".
func RuleService(r rules.Rule) string { return CommentService(r.Comment()) }

// ChainService returns the one service every commented rule of a chain
// names, or "" for a shared chain (its rules name several services or
// carry a shared comment: SERVICES, NODEPORTS, ...) and for a chain none
// of whose rules has a comment. It looks at the
// chain's own rules only: in large-cluster mode the SEP chains and some SVC
// and SVL chains have no comment at all, and only ServiceIndex, which also
// follows the jumps into a chain, finds their service.
func ChainService(rs []rules.Rule) string {
	svc, _ := ownService(rs)
	return svc
}

// ownService is ChainService, also reporting whether the chain is shared:
// its rules name several services or carry a shared comment.
func ownService(rs []rules.Rule) (svc string, shared bool) {
	for _, r := range rs {
		c := r.Comment()
		if sharedComments[c] {
			return "", true
		}
		s := CommentService(c)
		switch {
		case s == "":
		case svc == "":
			svc = s
		case s != svc:
			return "", true
		}
	}
	return svc, false
}

// IndexKey is the key of a chain in a ServiceIndex: "table/chain".
func IndexKey(table, chain string) string { return table + "/" + chain }

// ServiceIndex maps every chain of rs that serves a single service, keyed
// by IndexKey ("nat/SVCNAT-SEP-..."), to that service ("ns/name"). Shared
// chains (the built-in chains, SERVICES, NODEPORTS, MARK-MASQ, ...) and
// chains whose service cannot be told are left out. It is meant for owned
// rulesets (Owned, Plan.Desired, Plan.Live); the CLI's show groups the
// uncommented rules of a chain under index[IndexKey(table, chain)].
//
// A chain's service is, in this order:
//   - the one service its own rules' comments name (ChainService), unless
//     they name several or carry a shared comment;
//   - for a per-service chain (SVC, SVL, EXT, FW or SEP by name) without
//     comments, as large-cluster mode leaves SEP chains and SVC/SVL chains
//     without a masquerade rule: the service of the rules that jump to it
//     in the same table, each named by the jump's own comment (SERVICES'
//     "ns/svc:p80 cluster IP" -> SVC) or else, transitively, by the chain
//     holding the jump (SVC -> SEP, EXT -> SVL). Jumps whose service is
//     unknown are ignored; jumps naming different services leave the chain
//     out.
//
// A chain is shared when it is built in, when its own rules name several
// services or carry a shared comment ("svcnat service portals", ...), or
// when a rule with a shared comment jumps to it; shared chains are never
// attributed and never pass a service on.
func ServiceIndex(rs *rules.Ruleset) map[string]string {
	out := map[string]string{}
	if rs == nil {
		return out
	}
	for _, t := range rs.Tables {
		x := tableIndex{
			own:       map[string]string{},
			shared:    map[string]bool{},
			referrers: map[string][]rules.Rule{},
			state:     map[string]int8{},
			resolved:  map[string]string{},
		}
		for _, c := range t.Chains {
			svc, shared := ownService(c.Rules)
			x.own[c.Name] = svc
			if shared || c.Builtin() {
				x.shared[c.Name] = true
			}
			for _, r := range c.Rules {
				tgt := r.Target()
				if tgt == "" || t.Chain(tgt) == nil {
					continue
				}
				x.referrers[tgt] = append(x.referrers[tgt], r)
				if sharedComments[r.Comment()] {
					x.shared[tgt] = true
				}
			}
		}
		for _, c := range t.Chains {
			if s := x.resolve(c.Name); s != "" {
				out[IndexKey(t.Name, c.Name)] = s
			}
		}
	}
	return out
}

// tableIndex resolves the chains of one table for ServiceIndex.
type tableIndex struct {
	own       map[string]string       // ChainService of each chain
	shared    map[string]bool         // chains that serve every service
	referrers map[string][]rules.Rule // rules jumping to each chain
	state     map[string]int8         // 1 resolving (iptables refuses loops, but a parsed dump may hold one), 2 resolved
	resolved  map[string]string
}

func (x *tableIndex) resolve(chain string) string {
	switch x.state[chain] {
	case 1:
		return "" // a loop of uncommented chains names no service
	case 2:
		return x.resolved[chain]
	}
	x.state[chain] = 1
	svc := ""
	switch {
	case x.shared[chain]:
	case x.own[chain] != "":
		svc = x.own[chain]
	case perServiceChain(chain):
		svc = x.fromReferrers(chain)
	}
	x.state[chain], x.resolved[chain] = 2, svc
	return svc
}

// fromReferrers is the one service the jumps into chain name, by their
// comment or else by their chain; "" when none or several.
func (x *tableIndex) fromReferrers(chain string) string {
	svc := ""
	for _, r := range x.referrers[chain] {
		s := RuleService(r)
		if s == "" && !sharedComments[r.Comment()] {
			s = x.resolve(r.Chain)
		}
		switch {
		case s == "":
		case svc == "":
			svc = s
		case s != svc:
			return ""
		}
	}
	return svc
}

// perServiceChain reports whether chain is named as one of kube-proxy's
// per-service chains (prefix-SVC-hash, ...). Only those inherit a service
// from the jumps into them: MARK-MASQ, say, is jumped to from every
// service's chains, and with a single service all those jumps agree.
func perServiceChain(chain string) bool {
	for _, infix := range []string{"-SVC-", "-SVL-", "-EXT-", "-FW-", "-SEP-"} {
		if strings.Contains(chain, infix) {
			return true
		}
	}
	return false
}

// addServices adds to out every service that has rules in rs: those named
// by a comment and those of the chains idx, rs's ServiceIndex, attributes.
func addServices(out map[string]bool, rs *rules.Ruleset, idx map[string]string) {
	for _, s := range idx {
		out[s] = true
	}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for _, rule := range c.Rules {
				if s := RuleService(rule); s != "" {
					out[s] = true
				}
			}
		}
	}
}

// summarize groups the chain changes by service for the plan's first view,
// in words an operator uses: endpoints, cluster IPs, node ports.
// want and have are the services with rules in the desired and the live
// rulesets.
func summarize(changes []ChainChange, want, have map[string]bool) []ServiceChange {
	type what struct{ added, removed bool }
	seen := map[string]map[string]*what{}
	var order = map[string][]string{}
	note := func(svc, desc string, added bool) {
		if seen[svc] == nil {
			seen[svc] = map[string]*what{}
		}
		w := seen[svc][desc]
		if w == nil {
			w = &what{}
			seen[svc][desc] = w
			order[svc] = append(order[svc], desc)
		}
		if added {
			w.added = true
		} else {
			w.removed = true
		}
	}
	for _, c := range changes {
		if c.Service != "" && !c.Builtin && isEndpointChain(c) && c.Action != Update {
			if c.Action == Create {
				note(c.Service, "endpoint "+dnatTarget(c.After), true)
			} else {
				note(c.Service, "endpoint "+dnatTarget(c.Before), false)
			}
			continue
		}
		if c.Service != "" && c.Action != Update {
			note(c.Service, chainKind(c.Chain), c.Action == Create)
			continue
		}
		for _, d := range c.Diff {
			if d.Op == DiffEqual {
				continue
			}
			toks, err := rules.Tokenize(d.Text)
			if err != nil || len(toks) < 2 {
				continue
			}
			r := rules.Rule{Chain: toks[1], Args: toks[2:]}
			svc := RuleService(r)
			if svc == "" {
				svc = c.Service
			}
			if svc != "" {
				note(svc, describeRule(c.Table, r), d.Op == DiffInsert)
			}
		}
	}
	var out []ServiceChange
	for svc, descs := range order {
		sc := ServiceChange{Name: svc, Action: Update}
		switch {
		case want[svc] && !have[svc]:
			sc.Action = Create
		case !want[svc] && have[svc]:
			sc.Action = Delete
		default:
			for _, d := range descs {
				w := seen[svc][d]
				switch {
				case w.added && w.removed:
					sc.Details = append(sc.Details, d+" changed")
				case w.added:
					sc.Details = append(sc.Details, d+" added")
				default:
					sc.Details = append(sc.Details, d+" removed")
				}
			}
			// Endpoint changes explain the rewritten load-balancing
			// rules they cause (added, removed or changed); those are
			// named only when they stand alone.
			if containsPrefix(sc.Details, "endpoint ") {
				kept := sc.Details[:0]
				for _, d := range sc.Details {
					if !strings.HasPrefix(d, "cluster chain ") && !strings.HasPrefix(d, "local-endpoints chain ") {
						kept = append(kept, d)
					}
				}
				sc.Details = kept
			}
			// Endpoint changes first: they explain the rest.
			sort.SliceStable(sc.Details, func(i, j int) bool {
				return strings.HasPrefix(sc.Details[i], "endpoint ") && !strings.HasPrefix(sc.Details[j], "endpoint ")
			})
		}
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func containsPrefix(ss []string, p string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// chainKind names a per-service chain by its role.
func chainKind(chain string) string {
	for _, k := range []struct{ infix, name string }{
		{"-SVC-", "cluster chain"}, {"-SVL-", "local-endpoints chain"},
		{"-EXT-", "external-traffic chain"}, {"-FW-", "load-balancer firewall chain"},
	} {
		if strings.Contains(chain, k.infix) {
			return k.name
		}
	}
	return "rules of " + chain
}

// describeRule says what a rule does for its service, from its comment
// and matches, for the plan summary.
func describeRule(table string, r rules.Rule) string {
	comment := r.Comment()
	proto := arg(r, "-p")
	port := arg(r, "--dport")
	dst := strings.TrimSuffix(strings.TrimSuffix(arg(r, "-d"), "/32"), "/128")
	addr := dst + ":" + port + "/" + proto
	if strings.Contains(dst, ":") {
		addr = "[" + dst + "]:" + port + "/" + proto
	}
	switch {
	case strings.HasSuffix(comment, " cluster IP") && strings.HasSuffix(r.Chain, "-SERVICES"):
		return "cluster IP " + addr
	case strings.HasSuffix(comment, " external IP"):
		return "external IP " + addr
	case strings.HasSuffix(comment, " loadbalancer IP") && strings.HasSuffix(r.Chain, "-SERVICES"):
		return "load-balancer IP " + addr
	case strings.HasSuffix(comment, " health check node port"):
		return "health check node port " + port
	case strings.HasSuffix(r.Chain, "-NODEPORTS") && table == rules.TableNAT && dst == "":
		return "node port " + port + "/" + proto
	case strings.HasSuffix(comment, " has no endpoints"):
		return "no-endpoints REJECT"
	case strings.HasSuffix(comment, " has no local endpoints"):
		return "no-local-endpoints DROP"
	case strings.Contains(comment, " traffic not accepted by "):
		return "load-balancer source ranges"
	}
	return chainKind(r.Chain)
}

func isEndpointChain(c ChainChange) bool {
	return dnatTarget(c.After) != "" || dnatTarget(c.Before) != ""
}

func dnatTarget(rs []rules.Rule) string {
	for _, r := range rs {
		for i := 0; i+1 < len(r.Args); i++ {
			if r.Args[i] == "--to-destination" {
				return r.Args[i+1]
			}
		}
	}
	return ""
}
