package rules

import (
	"bufio"
	"io"
	"sort"
	"strings"
)

// Owns reports whether chain, in a table svcnat writes (OwnsTable),
// belongs to the owner of prefix: svcnat owns exactly the chains named
// PREFIX-… of nat and filter (and its jumps into them from built-in
// chains; see Owned), except the canary. Where the table is at hand,
// OwnsIn says it whole.
func Owns(prefix, chain string) bool {
	n := len(prefix)
	return len(chain) > n && chain[n] == '-' && chain[:n] == prefix && chain[n+1:] != canary
}

// OwnsTable reports whether svcnat writes table: nat and filter only. A
// chain of the prefix in any other table (mangle, raw, security) is never
// svcnat's, whatever its name: kube-proxy's KUBE-PROXY-CANARY in mangle
// under the prefix KUBE, say.
func OwnsTable(table string) bool { return table == "nat" || table == "filter" }

// OwnsIn reports whether chain of table belongs to the owner of prefix:
// Owns, in a table svcnat writes.
func OwnsIn(prefix, table, chain string) bool { return OwnsTable(table) && Owns(prefix, chain) }

const canary = "CANARY"

// Canary names prefix's canary chain: an empty chain that svcnat reconcile
// keeps in every table it writes, so that a flush of the table (iptables
// -F, firewalld --reload) shows at once, as kube-proxy's KUBE-PROXY-CANARY
// does. It is svcnat's, but no plan holds it: Owns leaves it out, so plan,
// apply and show beside the daemon neither see nor remove it.
func Canary(prefix string) string { return prefix + "-" + canary }

// Owned returns the part of rs the owner of prefix owns: every chain of
// nat and filter named with the prefix, and, in their built-in chains,
// only the rules that jump into such a chain (see OwnsIn). Everything else (Docker's, firewalld's, the operator's
// rules) is left out, and so is never compared, rewritten or removed.
// Tables and chains keep rs's order; a built-in chain appears only when it
// holds an owned jump. The owned chains are rs's own, shared, not copied:
// neither may be changed afterwards.
func (rs *Ruleset) Owned(prefix string) *Ruleset {
	out := &Ruleset{Family: rs.Family}
	for _, t := range rs.Tables {
		if !OwnsTable(t.Name) {
			continue
		}
		var ot *Table
		ensure := func() *Table {
			if ot == nil {
				ot = out.EnsureTable(t.Name)
			}
			return ot
		}
		for _, c := range t.Chains {
			switch {
			case Owns(prefix, c.Name):
				ot := ensure()
				ot.Chains = append(ot.Chains, c)
			case c.Builtin():
				for _, r := range c.Rules {
					if Owns(prefix, r.Target()) {
						ensure().Append(r)
					}
				}
			}
		}
	}
	return out
}

// Foreign returns the complement of Owned: what the owner of prefix must
// never change. Only the jumps into owned chains from built-in chains are
// owned; a jump into an owned chain from any other chain (an operator's
// "-A MYCHAIN -j SVCNAT-SEP-X") is foreign and kept here, and it pins that
// chain: iptables refuses to delete a chain something still jumps to.
func (rs *Ruleset) Foreign(prefix string) *Ruleset {
	out := &Ruleset{Family: rs.Family}
	for _, t := range rs.Tables {
		ft := out.EnsureTable(t.Name)
		if !OwnsTable(t.Name) {
			ft.Chains = append(ft.Chains, t.Clone().Chains...)
			continue
		}
		for _, c := range t.Chains {
			if Owns(prefix, c.Name) {
				continue
			}
			fc := ft.EnsureChain(c.Name)
			fc.Policy = c.Policy
			for _, r := range c.Rules {
				if !c.Builtin() || !Owns(prefix, r.Target()) {
					fc.Rules = append(fc.Rules, r)
				}
			}
		}
	}
	return out
}

// Clone copies the ruleset's tables, chains and rule lists, so that the
// copy can be changed without changing rs. Rule arguments are shared: no
// code changes a Rule's Args in place.
func (rs *Ruleset) Clone() *Ruleset {
	out := &Ruleset{Family: rs.Family, Tables: make([]*Table, 0, len(rs.Tables))}
	for _, t := range rs.Tables {
		out.Tables = append(out.Tables, t.Clone())
	}
	return out
}

// Clone copies the table's chains and rule lists (see Ruleset.Clone).
func (t *Table) Clone() *Table {
	out := &Table{Name: t.Name, Chains: make([]*Chain, 0, len(t.Chains))}
	for _, c := range t.Chains {
		out.Chains = append(out.Chains, &Chain{Name: c.Name, Policy: c.Policy, Rules: append([]Rule(nil), c.Rules...)})
	}
	return out
}

// Text prints the ruleset in iptables-save form with tables sorted by name
// and chains as SortChains orders them, so that the same rules print the
// same bytes whatever order a backend listed them in. It is the form
// rules are compared, digested and recorded in. A nil ruleset prints as "".
func (rs *Ruleset) Text() string {
	var b strings.Builder
	rs.writeText(&b)
	return b.String()
}

// WriteText writes Text to w as it is made, for rulesets too large to
// hold twice.
func (rs *Ruleset) WriteText(w io.Writer) error {
	b := bufio.NewWriterSize(w, 1<<16)
	rs.writeText(b)
	return b.Flush()
}

func (rs *Ruleset) writeText(b textWriter) {
	if rs == nil {
		return
	}
	tables := append([]*Table(nil), rs.Tables...)
	sort.Slice(tables, func(i, j int) bool { return tables[i].Name < tables[j].Name })
	for _, t := range tables {
		chains := append([]*Chain(nil), t.Chains...)
		sortChains(chains)
		writeSaveTable(b, t.Name, chains)
	}
}
