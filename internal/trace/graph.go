package trace

import (
	"fmt"
	"io"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
	"github.com/svcnat/svcnat/internal/sticky"
)

// Graph is the chain graph of one family's owned rules: the built-in
// hooks, the owned chains they lead to, and where the rules end (DNAT to
// an endpoint, DROP, REJECT, MASQUERADE), with each edge labelled by what
// it matches.
type Graph struct {
	Nodes []Node
	Edges []Edge
}

// Node is a chain or an end.
type Node struct {
	ID, Label string
	Kind      string // "hook", "chain" or "end"
}

// Edge is a rule that leads from one node to another.
type Edge struct {
	From, To, Label string
}

// NewGraph builds the graph of rs's chains owned by prefix; with service
// set, only the chains that serve it and the ones leading to them.
func NewGraph(rs *rules.Ruleset, prefix, service string) (*Graph, error) {
	g := &Graph{}
	type key struct{ table, chain string }
	ids := map[key]string{}
	var edges []Edge
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
		g.Nodes = append(g.Nodes, Node{ID: id, Label: label, Kind: kind})
		return id
	}
	var mine []bool // per edge: its rule's comment names the service
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			builtin := c.Builtin()
			if !builtin && !rules.Owns(prefix, c.Name) {
				continue
			}
			for _, r := range c.Rules {
				sp, err := r.Spec()
				if err != nil {
					return nil, err
				}
				var to string
				switch {
				case rules.Owns(prefix, sp.Target):
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
				edges = append(edges, Edge{From: from, To: to, Label: label(sp)})
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
	var nodes []Node
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

// WriteDOT writes g for Graphviz: dot -Tsvg.
func WriteDOT(out io.Writer, g *Graph) error {
	w := sticky.NewWriter(out)
	fmt.Fprintln(w, "digraph svcnat {")
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, `  node [shape=box, fontname="monospace", fontsize=10];`)
	fmt.Fprintln(w, `  edge [fontname="monospace", fontsize=9];`)
	for _, n := range g.Nodes {
		attrs := ""
		switch n.Kind {
		case "hook":
			attrs = `, shape=cds, style=filled, fillcolor="#dddddd"`
		case "end":
			attrs = `, shape=ellipse, style=filled, fillcolor="#e8f4e8"`
			if n.Label == "DROP" || n.Label == "REJECT" {
				attrs = `, shape=octagon, style=filled, fillcolor="#f8dddd"`
			}
		}
		fmt.Fprintf(w, "  %s [label=%q%s];\n", n.ID, n.Label, attrs)
	}
	for _, e := range g.Edges {
		fmt.Fprintf(w, "  %s -> %s [label=%q];\n", e.From, e.To, e.Label)
	}
	fmt.Fprintln(w, "}")
	return w.Err()
}

// WriteMermaid writes g as a Mermaid flowchart.
func WriteMermaid(out io.Writer, g *Graph) error {
	w := sticky.NewWriter(out)
	fmt.Fprintln(w, "flowchart LR")
	esc := func(s string) string { return strings.ReplaceAll(s, `"`, "#quot;") }
	for _, n := range g.Nodes {
		open, close := "[", "]"
		switch n.Kind {
		case "hook":
			open, close = "[/", "/]"
		case "end":
			open, close = "([", "])"
		}
		fmt.Fprintf(w, "  %s%s\"%s\"%s\n", n.ID, open, esc(n.Label), close)
	}
	for _, e := range g.Edges {
		if e.Label == "" {
			fmt.Fprintf(w, "  %s --> %s\n", e.From, e.To)
			continue
		}
		fmt.Fprintf(w, "  %s -->|\"%s\"| %s\n", e.From, esc(e.Label), e.To)
	}
	return w.Err()
}
