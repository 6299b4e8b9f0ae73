// Package planner computes what svcnat would change: it extracts the owned
// part of a live ruleset, diffs it chain by chain against the desired rules,
// and returns the plan as a value (per-chain changes, the live snapshot and
// its fingerprint). It never runs iptables and never prints; views in cli do.
package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"

	"github.com/svcnat/svcnat/rules"
)

// Owns reports whether a chain belongs to svcnat under prefix.
func Owns(prefix, chain string) bool { return strings.HasPrefix(chain, prefix+"-") }

// Owned returns the part of rs svcnat owns: every chain named with the
// prefix, and, in the built-in chains, only the rules that jump into such a
// chain. Everything else (Docker's, firewalld's, the operator's rules) is
// left out, and so is never compared, rewritten or removed. Tables and
// chains keep dump order; built-in chains appear only when they hold an
// owned jump.
func Owned(rs *rules.Ruleset, prefix string) *rules.Ruleset {
	out := &rules.Ruleset{Family: rs.Family}
	for _, t := range rs.Tables {
		var ot *rules.Table
		ensure := func() *rules.Table {
			if ot == nil {
				ot = out.EnsureTable(t.Name)
			}
			return ot
		}
		for _, c := range t.Chains {
			switch {
			case Owns(prefix, c.Name):
				nc := ensure().EnsureChain(c.Name)
				nc.Rules = append(nc.Rules, c.Rules...)
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

// Foreign returns the complement of Owned: what svcnat must never change.
// Apply compares it before and after to prove it left it alone. Only the
// jumps into owned chains from built-in chains are svcnat's; a jump into
// an owned chain from any other chain (an operator's "-A MYCHAIN -j
// SVCNAT-SEP-X") is foreign and kept here, and pins that chain (see
// Plan.Blocked).
func Foreign(rs *rules.Ruleset, prefix string) *rules.Ruleset {
	out := &rules.Ruleset{Family: rs.Family}
	for _, t := range rs.Tables {
		ft := out.EnsureTable(t.Name)
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

// Text prints a ruleset in iptables-save form with tables and chains
// sorted, so that the same rules print the same bytes whatever order a
// backend listed them in.
func Text(rs *rules.Ruleset) string {
	if rs == nil {
		return ""
	}
	c := Clone(rs)
	sort.Slice(c.Tables, func(i, j int) bool { return c.Tables[i].Name < c.Tables[j].Name })
	c.SortChains()
	var b strings.Builder
	_ = c.WriteSave(&b)
	return b.String()
}

// Fingerprint is a digest of owned rules per family, recorded in saved plans
// so that applying one made against other live rules is refused.
func Fingerprint(backend string, owned map[rules.Family]*rules.Ruleset) string {
	h := sha256.New()
	h.Write([]byte(backend + "\n"))
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		h.Write([]byte(f.String() + "\n"))
		h.Write([]byte(Text(owned[f])))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Clone deep-copies a ruleset.
func Clone(rs *rules.Ruleset) *rules.Ruleset {
	out := &rules.Ruleset{Family: rs.Family}
	for _, t := range rs.Tables {
		nt := out.EnsureTable(t.Name)
		for _, c := range t.Chains {
			nc := nt.EnsureChain(c.Name)
			nc.Policy = c.Policy
			nc.Rules = append([]rules.Rule(nil), c.Rules...)
		}
	}
	return out
}
