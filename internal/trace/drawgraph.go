package trace

import (
	"fmt"
	"io"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/sticky"
)

// WriteDOT writes g for Graphviz: dot -Tsvg.
func WriteDOT(out io.Writer, g *backend.Graph) error {
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
func WriteMermaid(out io.Writer, g *backend.Graph) error {
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
