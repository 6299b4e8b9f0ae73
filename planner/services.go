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
// names, or "" for a chain shared by several (SERVICES, NODEPORTS, ...).
func ChainService(rs []rules.Rule) string {
	svc := ""
	for _, r := range rs {
		s := RuleService(r)
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

// services lists every service that has rules in rs.
func services(rs map[rules.Family]*rules.Ruleset) map[string]bool {
	out := map[string]bool{}
	for _, r := range rs {
		for _, t := range r.Tables {
			for _, c := range t.Chains {
				for _, rule := range c.Rules {
					if s := RuleService(rule); s != "" {
						out[s] = true
					}
				}
			}
		}
	}
	return out
}

// summarize groups the chain changes by service for the plan's first view,
// in words an operator uses: endpoints, cluster IPs, node ports.
func summarize(changes []ChainChange, desired, live map[rules.Family]*rules.Ruleset) []ServiceChange {
	want, have := services(desired), services(live)
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
			// rules they cause; those are named only when they stand alone.
			if containsPrefix(sc.Details, "endpoint ") {
				kept := sc.Details[:0]
				for _, d := range sc.Details {
					if d != "cluster chain changed" && d != "local-endpoints chain changed" {
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
