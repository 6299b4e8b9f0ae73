package planner

import (
	"fmt"
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

// chainService returns the one service every commented rule of a chain
// names, or "" for a chain shared by several (SERVICES, NODEPORTS, ...).
func chainService(rs []rules.Rule) string {
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

// summarize groups the chain changes by service for the plan's first view.
func summarize(changes []ChainChange, desired, live map[rules.Family]*rules.Ruleset) []ServiceChange {
	want, have := services(desired), services(live)
	details := map[string][]string{}
	touched := map[string]bool{}
	note := func(svc, d string) {
		touched[svc] = true
		for _, x := range details[svc] {
			if x == d {
				return
			}
		}
		details[svc] = append(details[svc], d)
	}
	for _, c := range changes {
		if c.Service != "" && !c.Builtin && isEndpointChain(c) {
			switch c.Action {
			case Create:
				note(c.Service, fmt.Sprintf("endpoint %s added", dnatTarget(c.After)))
				continue
			case Delete:
				note(c.Service, fmt.Sprintf("endpoint %s removed", dnatTarget(c.Before)))
				continue
			}
		}
		for _, d := range c.Diff {
			if d.Op == DiffEqual {
				continue
			}
			toks, err := rules.Tokenize(d.Text)
			if err != nil || len(toks) < 2 {
				continue
			}
			svc := RuleService(rules.Rule{Chain: toks[1], Args: toks[2:]})
			if svc == "" {
				svc = c.Service
			}
			if svc != "" {
				note(svc, fmt.Sprintf("rules changed in %s %s", c.Table, c.Chain))
			}
		}
	}
	var out []ServiceChange
	for svc := range touched {
		sc := ServiceChange{Name: svc, Action: Update}
		switch {
		case want[svc] && !have[svc]:
			sc.Action = Create
		case !want[svc] && have[svc]:
			sc.Action = Delete
		default:
			sc.Details = details[svc]
			// Endpoint changes explain the rule changes they cause; the
			// rule changes are named only when they stand alone.
			var eps []string
			for _, d := range sc.Details {
				if strings.HasPrefix(d, "endpoint ") {
					eps = append(eps, d)
				}
			}
			if len(eps) > 0 {
				sc.Details = eps
			}
		}
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
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
