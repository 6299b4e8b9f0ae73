// Package applier commits a plan to the kernel through a backend.Kernel:
// it turns the plan's changes into transactions that touch only owned
// chains (backend.Kernel.Transactions), stages large creations, reads the result
// back to verify it, and restores the owned chains from the live snapshot
// on any failure. It never decides what the rules should be (the planner
// does), never writes a backend's language (the backend does) and never
// prints.
package applier

import (
	"context"
	"fmt"
	"slices"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
)

// Options tunes an apply.
type Options struct {
	// Batch bounds the chains created per staging transaction (0: the
	// backend's Limits; backend.NoStaging: none staged).
	Batch int
	// ListLimit is how many touched chains the verification reads one by
	// one (0: a full read); see backend.Limits.
	ListLimit int
	// Step, when set, is called before each transaction and before the
	// verification: the engine reports progress with it, and tests inject
	// faults (an error stops the apply there, as a failure would).
	Step func(Step) error
}

// StepKind says what a Step is about to do.
type StepKind int

// The kinds of steps.
const (
	// Stage creates a batch of chains nothing references yet.
	Stage StepKind = iota + 1
	// Commit is a family's one traffic-visible transaction.
	Commit
	// Check reads the rules back and verifies them.
	Check
)

// Step is one step of an apply.
type Step struct {
	Kind   StepKind
	Family backend.Family // Stage and Commit
	N, Of  int            // Stage: batch N of Of
	// Chains is how many chains the batch creates (Stage), Done how many
	// earlier batches of the family created and Total how many all of
	// them do, for progress.
	Chains, Done, Total int
	// Lines is how many lines the transaction writes (Stage and Commit).
	Lines int
}

func (s Step) String() string {
	switch s.Kind {
	case Stage:
		return fmt.Sprintf("%s stage %d", s.Family, s.N)
	case Commit:
		return fmt.Sprintf("%s commit", s.Family)
	}
	return "verify"
}

// Error is a failed apply: why it failed and whether the rollback to the
// live snapshot succeeded.
type Error struct {
	Err         error
	RolledBack  bool
	RollbackErr error
}

func (e *Error) Error() string {
	switch {
	case e.RollbackErr != nil:
		return fmt.Sprintf("%v; rolling back also failed: %v", e.Err, e.RollbackErr)
	case e.RolledBack:
		return fmt.Sprintf("%v (the owned chains were restored to what they were before)", e.Err)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Apply commits the plan. live is the whole live dump the plan was made
// against, read under the caller's lock: it is the snapshot the owned
// chains return to on failure, and what proves that no foreign rule
// changed. Apply writes per family the staged creations and the one
// traffic-visible transaction, then verifies (see Verify). On any failure,
// including ctx being cancelled by a signal between steps, it restores the
// owned chains to the snapshot and returns an *Error. A transaction
// already handed to the backend is let finish so that a signal never
// leaves half a transaction.
func Apply(ctx context.Context, k backend.Kernel, p *planner.Plan, live map[backend.Family]*backend.Ruleset, opts Options) error {
	if opts.Batch == 0 {
		opts.Batch = k.Limits().Batch
	}
	if p.Empty() {
		return nil
	}
	if err := commit(ctx, k, p, opts); err != nil {
		return rollback(k, p, live, err)
	}
	if err := verify(k, p, live, opts.ListLimit); err != nil {
		return rollback(k, p, live, err)
	}
	return nil
}

func commit(ctx context.Context, k backend.Kernel, p *planner.Plan, opts Options) error {
	step := func(s Step) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted before %s: %w", s, context.Cause(ctx))
		}
		if opts.Step != nil {
			return opts.Step(s)
		}
		return nil
	}
	for _, f := range backend.Families {
		stages, final := Transactions(k, p, f, opts.Batch)
		total, done := 0, 0
		for _, tx := range stages {
			total += len(tx.Changes)
		}
		for i, tx := range stages {
			k.Write(tx)
			s := Step{Kind: Stage, Family: f, N: i + 1, Of: len(stages), Chains: len(tx.Changes), Done: done, Total: total, Lines: tx.Lines}
			if err := step(s); err != nil {
				return err
			}
			if err := k.Run(tx); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			done += len(tx.Changes)
			stages[i] = nil // its payload can go
		}
		k.Write(final)
		if final.Lines == 0 {
			continue
		}
		s := Step{Kind: Commit, Family: f, Lines: final.Lines}
		if err := step(s); err != nil {
			return err
		}
		if err := k.Run(final); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return step(Step{Kind: Check})
}

// verify reads back the chains the plan touched, which are the only ones
// its transactions named: each owned chain must hold the plan's desired rules
// (or be gone), each built-in chain svcnat's desired jumps, in order, and
// the same foreign rules as in before. Chains the transactions never named are
// not compared, so Docker or firewalld changing their own rules meanwhile
// does not fail the apply. Up to listLimit chains are read one by one;
// more (a cold start) with one whole Read per family. Of an nftables set
// or map changed in place, only the elements the transaction wrote or
// removed are read, by key, where the backend can (verifyElements).
func verify(k backend.Kernel, p *planner.Plan, before map[backend.Family]*backend.Ruleset, listLimit int) error {
	for _, f := range backend.Families {
		var touched []backend.ChainChange
		for _, c := range p.Changes {
			if c.Family == f {
				touched = append(touched, c)
			}
		}
		if len(touched) == 0 {
			continue
		}
		read := func(table, chain string) ([]backend.Rule, bool, error) { return k.ReadChain(f, table, chain) }
		if len(touched) > listLimit {
			rs, err := k.Read(f, p.Desired[f])
			if err != nil {
				return fmt.Errorf("verifying %s: reading the live rules: %w", f, err)
			}
			read = func(table, chain string) ([]backend.Rule, bool, error) {
				if t := rs.Table(table); t != nil && t.Chain(chain) != nil {
					return t.Chain(chain).Rules, true, nil
				}
				return nil, false, nil
			}
		}
		names := map[string]bool{}
		for _, c := range touched {
			names[c.Chain] = true
		}
		er, _ := k.(backend.ElementReader)
		for _, c := range touched {
			if er != nil && len(touched) <= listLimit {
				if done, err := verifyElements(er, c, names); done || err != nil {
					if err != nil {
						return fmt.Errorf("verifying %s %s %s: %w", f, c.Table, c.Chain, err)
					}
					continue
				}
			}
			got, exists, err := read(c.Table, c.Chain)
			if err != nil {
				return fmt.Errorf("verifying %s: %w", f, err)
			}
			if err := verifyChain(p.Prefix, c, got, exists, before[f]); err != nil {
				return fmt.Errorf("verifying %s %s %s: %w", f, c.Table, c.Chain, err)
			}
		}
	}
	return nil
}

// verifyElements checks an nftables set or map the plan changes in place
// by the elements its transaction wrote or removed alone, read by key
// (backend.ElementReader), as verify leaves the chains the transactions
// never named alone: the elements added must be there as planned, those
// removed gone, and so must the unchanged ones the transaction wrote again
// (they refer to an object it makes again: see the nftables backend's
// write). done is false when the backend cannot answer that way, or c is
// no such change: verify reads the object whole then. At 10,000 services
// a change's read-back of its two maps went from a dump of 44,000
// elements (0.3 to 0.6 s) to a few keys.
func verifyElements(er backend.ElementReader, c backend.ChainChange, touched map[string]bool) (done bool, err error) {
	if c.Kind == backend.KindChain || c.Action != backend.Update || c.SpecChanged() {
		return false, nil
	}
	var asked, want []backend.Rule
	for op, r := range c.Lines() {
		again := false
		if op == backend.DiffEqual {
			for _, name := range backend.NFTReferences(r) {
				again = again || touched[name]
			}
		}
		switch {
		case op == backend.DiffDelete:
			asked = append(asked, r)
		case op == backend.DiffInsert || again:
			asked = append(asked, r)
			want = append(want, r)
		}
	}
	got, ok, err := er.ReadElements(c.Family, c.Table, c.Chain, asked)
	if err != nil || !ok {
		// The object read whole then (a read by key that failed is no
		// verdict on the rules: the whole read will say).
		return false, nil
	}
	texts := func(rules []backend.Rule) []string {
		var out []string
		for _, r := range rules {
			out = append(out, r.Text())
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	if g, w := texts(got), texts(want); !slices.Equal(g, w) {
		return true, fmt.Errorf("the elements it wrote or removed differ from the plan: read %q, want %q", g, w)
	}
	return true, nil
}

// verifyChain checks one touched chain as read back (got, and whether it
// exists) against the change that touched it.
func verifyChain(prefix string, c backend.ChainChange, got []backend.Rule, exists bool, before *backend.Ruleset) error {
	if !c.Builtin {
		switch {
		case c.Action == backend.Delete && exists:
			return fmt.Errorf("the plan deletes it, but it is still there")
		case c.Action == backend.Delete:
			return nil
		case !exists:
			return fmt.Errorf("the plan writes it, but it is not there")
		}
		if !backend.EqualRules(c.After, got) {
			return fmt.Errorf("its rules differ from the plan:\n%s", ruleDiff(c.After, got))
		}
		return nil
	}
	var owned, foreign []backend.Rule
	for _, r := range got {
		if backend.Owns(prefix, r.Target()) {
			owned = append(owned, r)
		} else {
			foreign = append(foreign, r)
		}
	}
	if !backend.EqualRules(c.After, owned) {
		return fmt.Errorf("svcnat's jumps differ from the plan:\n%s", ruleDiff(c.After, owned))
	}
	var was []backend.Rule
	if before != nil {
		if t := before.Table(c.Table); t != nil && t.Chain(c.Chain) != nil {
			for _, r := range t.Chain(c.Chain).Rules {
				if !backend.Owns(prefix, r.Target()) {
					was = append(was, r)
				}
			}
		}
	}
	if !backend.EqualRules(was, foreign) {
		return fmt.Errorf("rules svcnat does not own changed:\n%s", ruleDiff(was, foreign))
	}
	return nil
}

// Undo returns the owned chains of an applied plan to what they were in
// before (the snapshot the plan was applied from), because of cause: a
// check after the apply failed. It returns an *Error saying whether that
// worked, as Apply does on its own failures.
func Undo(k backend.Kernel, p *planner.Plan, before map[backend.Family]*backend.Ruleset, cause error) error {
	return rollback(k, p, before, cause)
}

// rollback restores the owned chains to what they were in before, by
// planning from the current live rules back to that snapshot and applying
// it the same way.
func rollback(k backend.Kernel, p *planner.Plan, before map[backend.Family]*backend.Ruleset, cause error) error {
	now, err := readAll(k, p)
	if err != nil {
		return &Error{Err: cause, RollbackErr: err}
	}
	back := planner.New(p.Prefix, p.Backend, p.Live, now)
	for _, f := range backend.Families {
		_, tx := Transactions(k, back, f, backend.NoStaging)
		tx.Whole = true
		if err := k.Run(tx); err != nil {
			return &Error{Err: cause, RollbackErr: err}
		}
	}
	if err := verify(k, back, before, k.Limits().ListLimit); err != nil {
		return &Error{Err: cause, RollbackErr: err}
	}
	return &Error{Err: cause, RolledBack: true}
}

// families lists the families the plan touches or snapshots.
func families(p *planner.Plan) []backend.Family {
	var out []backend.Family
	for _, f := range backend.Families {
		if f == backend.IPv4 || len(p.Desired[f].Tables) > 0 || len(p.Live[f].Tables) > 0 {
			out = append(out, f)
		}
	}
	return out
}

func readAll(k backend.Kernel, p *planner.Plan) (map[backend.Family]*backend.Ruleset, error) {
	out := map[backend.Family]*backend.Ruleset{}
	for _, f := range families(p) {
		rs, err := k.Read(f, nil)
		if err != nil {
			return nil, fmt.Errorf("reading the live %s rules: %w", f, err)
		}
		out[f] = rs
	}
	return out, nil
}
