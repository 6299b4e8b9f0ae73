// Package trace prints what a backend's tracer (backend.Tracer) finds: a
// packet's paths in the arrow notation operators draw kube-proxy's paths
// in, the chain graph for Graphviz or Mermaid, and what a trace's result
// says about the question asked (question.go). It works from backend's
// result types only: evaluating a packet is the backend's part (the
// iptables one is internal/kernel/iptables/trace).
package trace

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/sticky"
)

// Write prints res in the arrow notation operators draw kube-proxy's paths
// in, one block per path, most likely first: the hooks with the chains
// entered, the masquerade mark and source, and the verdict with the rule
// that decided it.
func Write(out io.Writer, res *backend.Result) error {
	w := sticky.NewWriter(out)
	paths := append([]backend.Path(nil), res.Paths...)
	sort.SliceStable(paths, func(i, j int) bool {
		if (paths[i].Condition == "") != (paths[j].Condition == "") {
			return paths[i].Condition == ""
		}
		return false
	})
	fmt.Fprintf(w, "%s\n", res.Packet)
	for i, p := range paths {
		share := fmt.Sprintf("%.1f %%", 100*p.Probability)
		if p.Condition != "" {
			share = "if " + p.Condition
		}
		fmt.Fprintf(w, "\npath %d (%s):\n", i+1, share)
		for i, h := range p.Hops {
			if i > 0 && p.Hops[i-1].Hook == "POSTROUTING" && h.Hook != "POSTROUTING" {
				// Sent by the host to itself: the packet comes back in.
				fmt.Fprintln(w, "  back in over lo")
			}
			fmt.Fprintf(w, "  %-6s %s", h.Table, strings.Join(h.Chains, " ==> "))
			if h.End != "" {
				fmt.Fprintf(w, " ==> %s", h.End)
			}
			fmt.Fprintln(w)
		}
		if p.Marked {
			fmt.Fprintln(w, "  marked for masquerade")
		}
		if p.Masquerade != "" {
			fmt.Fprintf(w, "  leaves with source %s\n", p.Masquerade)
		}
		if p.Cut != nil {
			fmt.Fprintf(w, "  %s\n", Describe(p))
		} else {
			fmt.Fprintf(w, "  verdict: %s\n", Describe(p))
		}
		if by := DecidedBy(p); by != "" {
			fmt.Fprintf(w, "  decided by: %s\n", by)
		}
		for _, u := range p.Unknown {
			fmt.Fprintf(w, "  not evaluated (taken as not matching): %s\n", u)
		}
	}
	return w.Err()
}

// Describe is a path's verdict in words: "DNAT to 10.64.1.2:80",
// "ACCEPT", "DROP", "REJECT"; for a cut path, which has none, where it
// was cut.
func Describe(p backend.Path) string {
	if p.Cut != nil {
		return fmt.Sprintf("path cut: jump depth %d reached at %s", p.Cut.Depth, p.Cut.Chain)
	}
	if p.Verdict == backend.DNAT {
		return "DNAT to " + p.Dst.String()
	}
	return string(p.Verdict)
}

// DecidedBy names what decided a path's verdict: the rule, with its table,
// or a built-in chain's policy; "" for an ACCEPT by policy and for a cut
// path.
func DecidedBy(p backend.Path) string {
	if p.Cut != nil {
		return ""
	}
	if d := p.Decided; d.Chain != "" {
		return d.Table + " " + d.Rule
	}
	return p.Policy
}
