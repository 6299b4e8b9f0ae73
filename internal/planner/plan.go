package planner

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/sergi/go-diff/diffmatchpatch"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Plan is what apply would do: the per-chain changes and the owned live
// snapshot they were computed against. It is a value: views render it
// (Describe puts it in an operator's words), the applier executes it, a
// saved plan serialises it.
type Plan struct {
	Prefix  string
	Backend backend.Name
	Desired map[backend.Family]*backend.Ruleset // owned rules wanted
	Live    map[backend.Family]*backend.Ruleset // owned rules found
	Changes []backend.ChainChange

	// Blocked lists the foreign rules that pin a chain this plan deletes;
	// such a plan must not be applied (see Blocked). New computes it from
	// the whole live dump it is given. A saved plan (UnmarshalPlan) holds
	// only owned rules, so its Blocked is always empty: before applying
	// one, plan again against the live dump, which fills it.
	Blocked []Blocked

	// ChainService maps the desired per-service chains to the services
	// they serve, when the renderer made them (backend.Rendered.ChainService);
	// nil otherwise. Describe uses it instead of guessing back from the
	// rules what the renderer knew.
	ChainService map[string]string

	// Interrupted lists the owned chains an interrupted apply left
	// (see Interrupted), for views to name; the engine fills it, as it
	// needs the recorded generation. The changes already hold what
	// happens to them.
	Interrupted []Left

	// Adopting lists the live owned chains the commit takes over with
	// --adopt (chains svcnat's state directory did not record), for
	// views to name; the engine fills it, as it needs the state. The
	// changes already hold what happens to them.
	Adopting []Left

	// Health is what reconcile's health view took out of the rendered
	// configuration (see Health); nil when no view was read.
	Health *Health

	// Destroy marks a plan to remove every owned chain (plan -destroy):
	// applied, it is committed as destroy is, with destroy's checks.
	Destroy bool

	// MovesFrom names, on the plan of an apply that moves svcnat's rules
	// from another backend (a migration), that backend; the engine fills
	// it, and the generation it records keeps it.
	MovesFrom backend.Name

	// Fingerprint is the digest of the live owned rules the plan was
	// made against (see the function Fingerprint), recorded in saved
	// plans so that applying one made against other live rules is
	// refused.
	Fingerprint string
}

// Planned is what a backend's Describer reads of the plan.
func (p *Plan) Planned() backend.Planned {
	return backend.Planned{Prefix: p.Prefix, Desired: p.Desired, Live: p.Live, Changes: p.Changes, ChainService: p.ChainService}
}

// Blocked is a foreign rule that pins a chain the plan deletes: a rule in
// a chain svcnat does not own (not prefixed, not built in), such as an
// operator's "-A MYCHAIN -j SVCNAT-SEP-X", that jumps to an owned chain the
// plan removes. iptables refuses to delete a chain something still jumps
// to ("CHAIN_DEL failed (Device or resource busy)"), and svcnat never edits
// foreign rules.
type Blocked struct {
	Family backend.Family
	Table  string
	Rule   backend.Rule // the foreign rule; Rule.Chain is the chain holding it
	Pins   string       // the owned chain it jumps to
}

// String says which rule pins which chain, as svcnat reports it:
// "IPv4 nat MYCHAIN: -A MYCHAIN -j SVCNAT-SEP-X pins SVCNAT-SEP-X, which
// this plan deletes".
func (b Blocked) String() string {
	return fmt.Sprintf("%s %s %s: %s pins %s, which this plan deletes", b.Family, b.Table, b.Rule.Chain, b.Rule, b.Pins)
}

// Empty reports whether the live rules already match.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 }

// Summary counts chains to add, change and remove (built-in chains count as
// changed), and rules added and removed.
type Summary struct {
	Add, Change, Remove      int
	RulesAdded, RulesRemoved int
}

// Summary counts the plan's changes.
func (p *Plan) Summary() Summary {
	var s Summary
	for _, c := range p.Changes {
		switch c.Action {
		case backend.Create:
			s.Add++
		case backend.Update:
			s.Change++
		case backend.Delete:
			s.Remove++
		}
		s.RulesAdded += c.Added()
		s.RulesRemoved += c.Removed()
	}
	return s
}

// New diffs the owned part of live against desired. Desired must hold only
// owned chains (as the renderer makes them); live may be a whole dump, and
// should be one: the foreign rules in it are what fills Blocked.
func New(prefix string, name backend.Name, desired, live map[backend.Family]*backend.Ruleset) *Plan {
	name = name.Canonical()
	p := &Plan{Prefix: prefix, Backend: name, Desired: map[backend.Family]*backend.Ruleset{}, Live: map[backend.Family]*backend.Ruleset{}}
	whole := map[backend.Family]*backend.Ruleset{}
	for _, f := range backend.Families {
		d, l := desired[f], live[f]
		if d == nil && l == nil {
			d, l = &backend.Ruleset{Family: f}, &backend.Ruleset{Family: f}
		}
		// A family one side has not is the other side's language, empty.
		if d == nil {
			d = &backend.Ruleset{Family: f, Syntax: l.Syntax}
		}
		if l == nil {
			l = &backend.Ruleset{Family: f, Syntax: d.Syntax}
		}
		p.Desired[f], p.Live[f], whole[f] = d.Owned(prefix), l.Owned(prefix), l
	}
	// The fingerprint prints the live owned rules (25 MB at 10,000
	// services), which takes as long as the diff: the two run side by
	// side, and both only read the rulesets.
	fingerprint := make(chan string, 1)
	go func() { fingerprint <- Fingerprint(name, p.Live) }()
	for _, f := range backend.Families {
		changes := diffFamily(f, p.Desired[f], p.Live[f])
		if p.Live[f].Syntax == backend.NFTables {
			// nft remakes an object whose declaration changes, and refuses
			// to delete what live rules and elements still name: those are
			// rewritten in the same transaction.
			changes = backend.NFTReferrers(p.Live[f], changes)
		}
		p.Changes = append(p.Changes, changes...)
		p.Blocked = append(p.Blocked, blocked(f, whole[f], prefix, changes)...)
	}
	p.Fingerprint = <-fingerprint
	return p
}

// blocked lists the foreign rules of live that jump to a chain changes
// deletes, for Plan.Blocked.
func blocked(f backend.Family, live *backend.Ruleset, prefix string, changes []backend.ChainChange) []Blocked {
	type key struct{ table, chain string }
	deleted := map[key]bool{}
	for _, c := range changes {
		if c.Action == backend.Delete && !c.Builtin {
			deleted[key{c.Table, c.Chain}] = true
		}
	}
	if len(deleted) == 0 {
		return nil
	}
	var out []Blocked
	for _, t := range live.Tables {
		for _, c := range t.Chains {
			if c.Builtin() || live.Owns(prefix, t.Name, c.Name) {
				continue
			}
			for _, r := range c.Rules {
				if tgt := r.Target(); deleted[key{t.Name, tgt}] {
					out = append(out, Blocked{Family: f, Table: t.Name, Rule: r, Pins: tgt})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return a.Rule.String() < b.Rule.String()
	})
	return out
}

// diffFamily diffs one family's owned rules.
func diffFamily(f backend.Family, desired, live *backend.Ruleset) []backend.ChainChange {
	type key struct{ table, chain string }
	seen := map[key]bool{}
	var keys []key
	created := 0 // chains only desired: changes for certain
	for i, rs := range []*backend.Ruleset{desired, live} {
		for _, t := range rs.Tables {
			for _, c := range t.Chains {
				k := key{t.Name, c.Name}
				switch {
				case !seen[k]:
					seen[k] = true
					keys = append(keys, k)
				case i == 1:
					created--
				}
			}
		}
		if i == 0 {
			created = len(keys)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].table != keys[j].table {
			return keys[i].table < keys[j].table
		}
		return keys[i].chain < keys[j].chain
	})
	// A cold start creates every chain: sized for them, its changes are
	// allocated once.
	out := make([]backend.ChainChange, 0, created)
	for _, k := range keys {
		var dc, lc *backend.Chain
		if t := desired.Table(k.table); t != nil {
			dc = t.Chain(k.chain)
		}
		if t := live.Table(k.table); t != nil {
			lc = t.Chain(k.chain)
		}
		ch := backend.ChainChange{Family: f, Table: k.table, Chain: k.chain, Builtin: backend.IsBuiltinChain(k.chain)}
		switch {
		case dc != nil && lc == nil:
			ch.Action, ch.After = backend.Create, dc.Rules
			ch.Kind, ch.SpecAfter = dc.Kind, nftSpec(desired, dc)
		case dc == nil && lc != nil:
			ch.Action, ch.Before = backend.Delete, lc.Rules
			ch.Kind, ch.SpecBefore = lc.Kind, nftSpec(live, lc)
		default:
			ch.Kind, ch.SpecBefore, ch.SpecAfter = dc.Kind, nftSpec(live, lc), nftSpec(desired, dc)
			if lc.Kind != dc.Kind {
				// One name, another kind of object (a set become a
				// map): one goes and the other comes.
				out = append(out, backend.ChainChange{Family: f, Table: k.table, Chain: k.chain, Action: backend.Delete,
					Before: lc.Rules, Kind: lc.Kind, SpecBefore: ch.SpecBefore})
				ch.Action, ch.After, ch.SpecBefore = backend.Create, dc.Rules, ""
				break
			}
			if ch.SpecBefore == ch.SpecAfter && backend.EqualRules(dc.Rules, lc.Rules) {
				continue
			}
			ch.Action, ch.Before, ch.After = backend.Update, lc.Rules, dc.Rules
		}
		ch.Diff = RuleRuns(ch.Before, ch.After)
		if ch.Builtin && ch.Action != backend.Update {
			ch.Action = backend.Update // a built-in chain is never created or removed, only its jumps
		}
		out = append(out, ch)
	}
	return out
}

// nftSpec is an nftables object's declaration (Chain.Policy), "" for an
// iptables chain, whose policy is not svcnat's to compare.
func nftSpec(rs *backend.Ruleset, c *backend.Chain) string {
	if rs.Syntax != backend.NFTables {
		return ""
	}
	return c.Policy
}

// RuleRuns is the line diff of two rule lists (go-diff's line mode), as
// runs over them, so that a changed chain shows only the rules that
// moved. A chain created or deleted needs no differ: its diff is nil,
// which backend.ChainChange reads as all of each side.
func RuleRuns(before, after []backend.Rule) []backend.DiffRun {
	if len(before) == 0 || len(after) == 0 {
		return nil
	}
	dmp := diffmatchpatch.New()
	a, b, _ := dmp.DiffLinesToRunes(ruleText(before), ruleText(after))
	var out []backend.DiffRun
	for _, d := range lineDiffs(dmp, a, b) {
		run := backend.DiffRun{Op: diffOp(d.Type), N: utf8.RuneCountInString(d.Text)} // a rune a line
		if n := len(out); n > 0 && out[n-1].Op == run.Op {
			out[n-1].N += run.N
			continue
		}
		out = append(out, run)
	}
	return out
}

// RuleDiff is RuleRuns line by line.
func RuleDiff(before, after []backend.Rule) []backend.DiffLine {
	c := backend.ChainChange{Before: before, After: after, Diff: RuleRuns(before, after)}
	var out []backend.DiffLine
	for op, r := range c.Lines() {
		out = append(out, backend.DiffLine{Op: op, Text: r.String()})
	}
	return out
}

func diffOp(t diffmatchpatch.Operation) backend.DiffOp {
	switch t {
	case diffmatchpatch.DiffInsert:
		return backend.DiffInsert
	case diffmatchpatch.DiffDelete:
		return backend.DiffDelete
	}
	return backend.DiffEqual
}

// maxDiffLines bounds the lines, between the common head and tail, that
// go-diff's Myers diff compares. Its time grows with the lines times the
// edits, so with the square of the lines when most of them change, as
// when an endpoint leaves a large service and every probability of its
// chain changes (5,000 endpoints: 0.9 s for the plan's diffs). Beyond the
// bound the lines between head and tail are shown as removed and added
// whole: a true diff, if not the shortest.
const maxDiffLines = 2000

// lineDiffs diffs a and b, one rune a line (DiffLinesToRunes): go-diff's
// Myers diff when at most maxDiffLines lines differ around the common
// head and tail, else the lines between them removed and added whole.
func lineDiffs(dmp *diffmatchpatch.DiffMatchPatch, a, b []rune) []diffmatchpatch.Diff {
	head := 0
	for head < len(a) && head < len(b) && a[head] == b[head] {
		head++
	}
	tail := 0
	for tail < len(a)-head && tail < len(b)-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	midA, midB := a[head:len(a)-tail], b[head:len(b)-tail]
	if len(midA)+len(midB) <= maxDiffLines {
		return dmp.DiffMainRunes(a, b, false)
	}
	var out []diffmatchpatch.Diff
	for _, d := range []diffmatchpatch.Diff{
		{Type: diffmatchpatch.DiffEqual, Text: string(a[:head])},
		{Type: diffmatchpatch.DiffDelete, Text: string(midA)},
		{Type: diffmatchpatch.DiffInsert, Text: string(midB)},
		{Type: diffmatchpatch.DiffEqual, Text: string(a[len(a)-tail:])},
	} {
		if d.Text != "" {
			out = append(out, d)
		}
	}
	return out
}

func ruleText(rs []backend.Rule) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	return b.String()
}
