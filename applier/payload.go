// Package applier commits a plan to the kernel: it turns the plan into
// iptables-restore --noflush payloads that touch only owned chains, stages
// large creations, reads the result back to verify it, and restores the
// owned chains from the live snapshot on any failure. It never decides what
// the rules should be (the planner does) and never prints.
package applier

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
)

// tableOrder is the order tables are written in, as kube-proxy does.
var tableOrder = []string{rules.TableFilter, rules.TableNAT}

// familyChanges returns the plan's changes of one family grouped by table.
func familyChanges(changes []planner.ChainChange, f rules.Family) map[string][]planner.ChainChange {
	out := map[string][]planner.ChainChange{}
	for _, c := range changes {
		if c.Family == f {
			out[c.Table] = append(out[c.Table], c)
		}
	}
	return out
}

// Payload renders the one iptables-restore --noflush transaction that
// turns the live owned rules into the desired ones for a family, skipping
// the chains in staged (already created by an earlier batch). Per table:
// every changed or doomed chain is declared (which creates or flushes it),
// svcnat's jumps in built-in chains are deleted and inserted again at the
// top in the desired order, changed chains are filled, and doomed chains
// are deleted last, after the rules that referenced them are gone. Nothing
// else is named, so nothing else changes. It returns nil when the family
// has nothing to do.
func Payload(p *planner.Plan, f rules.Family, staged map[string]bool) []byte {
	byTable := familyChanges(p.Changes, f)
	var b bytes.Buffer
	for _, table := range orderedTables(byTable) {
		changes := byTable[table]
		var decl, body, del bytes.Buffer
		for _, c := range changes {
			if c.Builtin {
				for _, r := range c.Before {
					fmt.Fprintf(&body, "-D %s\n", r.String()[len("-A "):])
				}
				for i := len(c.After) - 1; i >= 0; i-- {
					fmt.Fprintf(&body, "-I %s 1 %s\n", c.Chain, c.After[i].String()[len("-A "+c.Chain+" "):])
				}
				continue
			}
			if staged[c.Chain] {
				continue
			}
			fmt.Fprintf(&decl, ":%s - [0:0]\n", c.Chain)
			if c.Action == planner.Delete {
				fmt.Fprintf(&del, "-X %s\n", c.Chain)
				continue
			}
			for _, r := range c.After {
				body.WriteString(r.String())
				body.WriteByte('\n')
			}
		}
		if decl.Len()+body.Len()+del.Len() == 0 {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", table)
		b.Write(decl.Bytes())
		b.Write(body.Bytes())
		b.Write(del.Bytes())
		b.WriteString("COMMIT\n")
	}
	if b.Len() == 0 {
		return nil
	}
	return b.Bytes()
}

func orderedTables(m map[string][]planner.ChainChange) []string {
	var out []string
	for _, t := range tableOrder {
		if _, ok := m[t]; ok {
			out = append(out, t)
		}
	}
	var rest []string
	for t := range m {
		if t != rules.TableFilter && t != rules.TableNAT {
			rest = append(rest, t)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// Stages splits the chains a plan creates into batches that can be loaded
// before the final transaction: one nf_tables transaction is super-linear
// in the chains it creates, so a cold start of thousands of services is
// created in batches of at most batch chains each. Only chains nothing
// live references yet are staged, and each batch holds chains whose
// targets exist already or come in the same or an earlier batch, so every
// batch loads on its own and none of them is visible to traffic until the
// final transaction adds the references. It returns no batches when the
// plan creates no more than batch chains.
func Stages(p *planner.Plan, f rules.Family, batch int) [][]planner.ChainChange {
	var creates []planner.ChainChange
	for _, c := range p.Changes {
		if c.Family == f && c.Action == planner.Create && !c.Builtin {
			creates = append(creates, c)
		}
	}
	if batch <= 0 || len(creates) <= batch {
		return nil
	}
	// Order by depth: a chain comes after every created chain it jumps to.
	created := map[string]*planner.ChainChange{}
	for i := range creates {
		created[creates[i].Table+"/"+creates[i].Chain] = &creates[i]
	}
	depth := map[string]int{}
	var visit func(key string, seen map[string]bool) int
	visit = func(key string, seen map[string]bool) int {
		if d, ok := depth[key]; ok {
			return d
		}
		if seen[key] {
			return 0 // a cycle; iptables refuses loops anyway
		}
		seen[key] = true
		c := created[key]
		d := 0
		for _, r := range c.After {
			tk := c.Table + "/" + r.Target()
			if _, ok := created[tk]; ok {
				if x := visit(tk, seen) + 1; x > d {
					d = x
				}
			}
		}
		depth[key] = d
		return d
	}
	for k := range created {
		visit(k, map[string]bool{})
	}
	sort.SliceStable(creates, func(i, j int) bool {
		di, dj := depth[creates[i].Table+"/"+creates[i].Chain], depth[creates[j].Table+"/"+creates[j].Chain]
		if di != dj {
			return di < dj
		}
		return creates[i].Chain < creates[j].Chain
	})
	var out [][]planner.ChainChange
	for len(creates) > 0 {
		n := batch
		if n > len(creates) {
			n = len(creates)
		}
		out = append(out, creates[:n])
		creates = creates[n:]
	}
	return out
}

// stagePayload renders one batch of chain creations.
func stagePayload(batch []planner.ChainChange) []byte {
	byTable := map[string][]planner.ChainChange{}
	for _, c := range batch {
		byTable[c.Table] = append(byTable[c.Table], c)
	}
	var b bytes.Buffer
	for _, table := range orderedTables(byTable) {
		fmt.Fprintf(&b, "*%s\n", table)
		for _, c := range byTable[table] {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c.Chain)
		}
		for _, c := range byTable[table] {
			for _, r := range c.After {
				b.WriteString(r.String())
				b.WriteByte('\n')
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.Bytes()
}
