package trace

import (
	"fmt"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
)

// Graph is the chain graph of family f's owned rules (h.Prefix); with
// service set, only the chains that serve it and the ones leading to them.
func (h Host) Graph(f backend.Family, service string) (*backend.Graph, error) {
	rs := h.Rules[f]
	if rs == nil {
		return nil, fmt.Errorf("no %s rules", f)
	}
	return newGraph(rs, h.Prefix, service)
}

// newGraph builds the graph of rs's chains owned by prefix; with service
// set, only the chains that serve it and the ones leading to them.
func newGraph(rs *backend.Ruleset, prefix, service string) (*backend.Graph, error) {
	g := &backend.Graph{}
	type key struct{ table, chain string }
	ids := map[key]string{}
	var edges []backend.Edge
	node := func(table, chain, kind string) string {
		k := key{table, chain}
		if id, ok := ids[k]; ok {
			return id
		}
		id := fmt.Sprintf("n%d", len(ids))
		ids[k] = id
		label := chain
		switch {
		case kind == "hook":
			label = table + " " + chain
		case kind == "chain" && table != "nat":
			label = chain + " (" + table + ")"
		}
		g.Nodes = append(g.Nodes, backend.Node{ID: id, Label: label, Kind: kind})
		return id
	}
	var mine []bool // per edge: its rule's comment names the service
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			builtin := c.Builtin()
			if !builtin && !backend.Owns(prefix, c.Name) {
				continue
			}
			for _, r := range c.Rules {
				sp, err := rules.ParseSpec(r)
				if err != nil {
					return nil, err
				}
				var to string
				switch {
				case backend.Owns(prefix, sp.Target):
					to = node(t.Name, sp.Target, "chain")
				case builtin:
					continue // a foreign rule of a built-in chain
				case sp.Target == "DNAT":
					d, _ := sp.TargetOption("--to-destination")
					to = node("", "DNAT "+d.Value(), "end")
				case sp.Target == "DROP", sp.Target == "REJECT", sp.Target == "MASQUERADE":
					to = node(t.Name, sp.Target, "end")
				default:
					continue // MARK, RETURN, rules without a target
				}
				kind := "chain"
				if builtin {
					kind = "hook"
				}
				from := node(t.Name, c.Name, kind)
				edges = append(edges, backend.Edge{From: from, To: to, Label: label(sp)})
				mine = append(mine, service != "" && commentService(sp) == service)
			}
		}
	}
	if service == "" {
		g.Edges = edges
		return g, nil
	}
	// Keep the service's own rules and, transitively, the rules that lead
	// to them.
	keep := append([]bool(nil), mine...)
	for changed := true; changed; {
		changed = false
		for i, e := range edges {
			for j, k := range edges {
				if keep[j] && !keep[i] && e.To == k.From {
					keep[i], changed = true, true
				}
			}
		}
	}
	used := map[string]bool{}
	for i, e := range edges {
		if keep[i] {
			g.Edges = append(g.Edges, e)
			used[e.From], used[e.To] = true, true
		}
	}
	if len(g.Edges) == 0 {
		return nil, fmt.Errorf("no rule serves service %q", service)
	}
	var nodes []backend.Node
	for _, n := range g.Nodes {
		if used[n.ID] {
			nodes = append(nodes, n)
		}
	}
	g.Nodes = nodes
	return g, nil
}

func commentService(sp rules.Spec) string {
	for _, m := range sp.Matches {
		if c, ok := m.Option("--comment"); ok {
			return vocab.CommentService(c.Value())
		}
	}
	return ""
}

// label says what a rule matches, briefly: addresses, protocol and port,
// marks, the probability of a split, affinity.
func label(sp rules.Spec) string {
	var parts []string
	neg := func(o rules.Option) string {
		if o.Negated {
			return "!"
		}
		return ""
	}
	if o := sp.Source; o.Name != "" {
		parts = append(parts, "src "+neg(o)+o.Value())
	}
	if o := sp.Destination; o.Name != "" {
		parts = append(parts, "dst "+neg(o)+o.Value())
	}
	for _, m := range sp.Matches {
		switch m.Module {
		case "tcp", "udp", "sctp":
			if d, ok := m.Option("--dport"); ok {
				parts = append(parts, m.Module+"/"+neg(d)+d.Value())
			}
		case "addrtype":
			if d, ok := m.Option("--dst-type"); ok {
				parts = append(parts, "dst-type "+neg(d)+d.Value())
			}
		case "mark":
			if d, ok := m.Option("--mark"); ok {
				parts = append(parts, "mark "+neg(d)+d.Value())
			}
		case "statistic":
			if p, ok := m.Option("--probability"); ok {
				var f float64
				fmt.Sscanf(p.Value(), "%g", &f)
				parts = append(parts, fmt.Sprintf("p=%.3g", f))
			}
		case "recent":
			if _, ok := m.Option("--rcheck"); ok {
				parts = append(parts, "affinity")
			}
		case "conntrack":
			if s, ok := m.Option("--ctstate"); ok {
				parts = append(parts, "ctstate "+neg(s)+s.Value())
			}
		}
	}
	return strings.Join(parts, " ")
}
