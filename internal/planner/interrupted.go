package planner

import (
	"fmt"
	"sort"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Left is an owned chain an interrupted apply left behind: an apply
// killed with SIGKILL while it created chains in batches (staging) leaves
// the batches it finished, which nothing references yet; SIGINT or SIGTERM
// would have removed them. The apply noted them in its state directory
// before it created them, so they are provably svcnat's: apply and
// destroy clear them, the next apply using those its configuration wants
// and deleting the rest, like any chain.
type Left struct {
	Family backend.Family
	Table  string
	Chain  string
}

// String names the chain as svcnat reports it: "IPv4 nat SVCNAT-SEP-X".
func (l Left) String() string { return fmt.Sprintf("%s %s %s", l.Family, l.Table, l.Chain) }

// Interrupted lists the owned chains of live (whole dumps) that an apply
// began to create (began, keyed by Left.String: what the state directory
// noted before the apply wrote them), that nothing reaches, directly or
// through other owned chains, from a built-in chain or from a chain svcnat
// does not own, and that recorded (the owned rules of the last recorded
// generation; nil when none is) does not have: what an interrupted apply
// left. Another unreached chain of the prefix is no interrupted apply's:
// nothing proves svcnat made it. Sorted by family, table and chain.
func Interrupted(prefix string, live, recorded map[backend.Family]*backend.Ruleset, began map[string]bool) []Left {
	if len(began) == 0 {
		return nil
	}
	var out []Left
	for _, f := range backend.Families {
		if live[f] == nil {
			continue
		}
		for _, t := range live[f].Tables {
			var rt *backend.Table
			if recorded[f] != nil {
				rt = recorded[f].Table(t.Name)
			}
			for _, c := range unreached(prefix, t) {
				l := Left{Family: f, Table: t.Name, Chain: c}
				if began[l.String()] && (rt == nil || rt.Chain(c) == nil) {
					out = append(out, l)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Family != b.Family {
			return a.Family < b.Family
		}
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return a.Chain < b.Chain
	})
	return out
}

// unreached lists the owned chains of t that no jump from a chain svcnat
// does not own leads to, by a walk from those jumps.
func unreached(prefix string, t *backend.Table) []string {
	owned := make(map[string]*backend.Chain, len(t.Chains))
	for _, c := range t.Chains {
		if !c.Builtin() && backend.OwnsIn(prefix, t.Name, c.Name) {
			owned[c.Name] = c
		}
	}
	if len(owned) == 0 {
		return nil
	}
	reached := make(map[string]bool, len(owned))
	var queue []string
	reach := func(c *backend.Chain) {
		for _, r := range c.Rules {
			if tgt := r.Target(); owned[tgt] != nil && !reached[tgt] {
				reached[tgt] = true
				queue = append(queue, tgt)
			}
		}
	}
	for _, c := range t.Chains {
		if owned[c.Name] == nil {
			reach(c)
		}
	}
	for len(queue) > 0 {
		c := owned[queue[0]]
		queue = queue[1:]
		reach(c)
	}
	var out []string
	for name := range owned {
		if !reached[name] {
			out = append(out, name)
		}
	}
	return out
}
