package backend

import (
	"iter"
)

// Action is what a plan does to a kernel object or a service; its value is
// the glyph the views print.
type Action rune

// The actions.
const (
	Create Action = '+'
	Update Action = '~'
	Delete Action = '-'
)

func (a Action) String() string {
	switch a {
	case Create:
		return "create"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return "no-op"
}

// ChainChange is one owned chain that differs between live and desired. For
// a built-in chain it covers only svcnat's jump rules in it. It is a
// complete value: its diff is computed once, when the plan is made.
type ChainChange struct {
	Family  Family
	Table   string
	Chain   string
	Action  Action
	Builtin bool
	Before  []Rule
	After   []Rule
	// Diff is the rule diff of Before and After, as runs over them. Nil
	// means all of Before deleted and all of After inserted: the diff of
	// a chain created or deleted, so that a cold start's 60,000 chains
	// cost nothing more than their rules.
	Diff []DiffRun
	// Kind is what the object is: on iptables always a chain; on
	// nftables a chain, a set or a map, whose Before and After are then
	// its elements.
	Kind Kind
	// SpecBefore and SpecAfter are, on nftables, the object's
	// declarations live and desired (Chain.Policy); they differ when the
	// declaration itself changes. Empty on iptables.
	SpecBefore, SpecAfter string
}

// SpecChanged reports an nftables object whose declaration changes: it
// is removed and made again, not edited.
func (c ChainChange) SpecChanged() bool {
	return c.Action == Update && c.SpecBefore != c.SpecAfter
}

// DiffOp marks a line of a rule diff.
type DiffOp rune

// The diff operations, as the views print them.
const (
	DiffEqual  DiffOp = ' '
	DiffInsert DiffOp = '+'
	DiffDelete DiffOp = '-'
)

// DiffRun is N consecutive lines of a diff with the same Op: equal lines
// take the next N rules of both Before and After, deleted ones of Before,
// inserted ones of After.
type DiffRun struct {
	Op DiffOp
	N  int
}

// DiffLine is one rule line of a diff.
type DiffLine struct {
	Op   DiffOp
	Text string
}

// Lines is the diff rule by rule: for an equal line, the rule of After.
func (c ChainChange) Lines() iter.Seq2[DiffOp, Rule] {
	return func(yield func(DiffOp, Rule) bool) {
		i, j := 0, 0 // the next rule of Before, of After
		for _, run := range c.runs() {
			for range run.N {
				var r Rule
				switch run.Op {
				case DiffEqual:
					r = c.After[j]
					i, j = i+1, j+1
				case DiffDelete:
					r = c.Before[i]
					i++
				case DiffInsert:
					r = c.After[j]
					j++
				}
				if !yield(run.Op, r) {
					return
				}
			}
		}
	}
}

// Added counts inserted rules.
func (c ChainChange) Added() int { return c.count(DiffInsert) }

// Removed counts deleted rules.
func (c ChainChange) Removed() int { return c.count(DiffDelete) }

// runs is Diff, nil read as what it stands for.
func (c ChainChange) runs() []DiffRun {
	if c.Diff != nil {
		return c.Diff
	}
	return []DiffRun{{Op: DiffDelete, N: len(c.Before)}, {Op: DiffInsert, N: len(c.After)}}
}

func (c ChainChange) count(op DiffOp) int {
	switch {
	case c.Diff != nil:
	case op == DiffDelete:
		return len(c.Before)
	case op == DiffInsert:
		return len(c.After)
	}
	n := 0
	for _, run := range c.Diff {
		if run.Op == op {
			n += run.N
		}
	}
	return n
}
