package applier

import (
	"context"
	"fmt"

	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/planner"
)

// Kernel is what the applier needs of iptables: a dump and a restore per
// family, and single-chain reads. It is a subset of iptables.Interface, so
// the real runner and iptables.Fake satisfy it.
type Kernel interface {
	Save(f rules.Family) (*rules.Ruleset, error)
	ListChain(f rules.Family, table, chain string) ([]rules.Rule, bool, error)
	Restore(f rules.Family, payload []byte, flags iptables.RestoreFlags) error
}

// ListLimitFor is how many touched chains a verification reads one by one
// on a backend; beyond it one full save per family is cheaper. At 10,000
// services a single-chain read costs about a hundredth of a full save on
// nft, and a third of one on legacy, which reads the whole table anyway.
func ListLimitFor(backend string) int {
	if backend == string(iptables.Legacy) {
		return 2
	}
	return 64
}

// DefaultBatch is how many chains one staging transaction creates at most.
const DefaultBatch = 1000

// NoStaging, as Options.Batch, creates every chain in the one final
// transaction.
const NoStaging = -1

// BatchFor is the staging batch for a backend. nf_tables transactions are
// super-linear in the chains they create (10,000 services x 5 in one:
// 250 s; in batches of 1,000: 7 s). Legacy iptables-restore replaces a
// whole table per transaction, so each batch rewrites everything before it
// (the same rules staged: 96 s; in one transaction: 4 s): it is not staged.
func BatchFor(backend string) int {
	if backend == string(iptables.Legacy) {
		return NoStaging
	}
	return DefaultBatch
}

// Options tunes an apply.
type Options struct {
	// Batch bounds the chains created per staging transaction
	// (0: DefaultBatch; NoStaging: none staged); see BatchFor.
	Batch int
	// ListLimit is how many touched chains the verification reads one by
	// one (0: a full save); see ListLimitFor.
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
	Family rules.Family // Stage and Commit
	N, Of  int          // Stage: batch N of Of
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
// already handed to iptables-restore is let finish so that a signal never
// leaves half a transaction.
func Apply(ctx context.Context, k Kernel, p *planner.Plan, live map[rules.Family]*rules.Ruleset, opts Options) error {
	if opts.Batch == 0 {
		opts.Batch = DefaultBatch
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

func commit(ctx context.Context, k Kernel, p *planner.Plan, opts Options) error {
	step := func(s Step) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted before %s: %w", s, context.Cause(ctx))
		}
		if opts.Step != nil {
			return opts.Step(s)
		}
		return nil
	}
	for _, f := range rules.Families {
		staged := map[string]bool{}
		stages := Stages(p, f, opts.Batch)
		total, done := 0, 0
		for _, b := range stages {
			total += len(b)
		}
		for i, batch := range stages {
			payload := stagePayload(batch)
			s := Step{Kind: Stage, Family: f, N: i + 1, Of: len(stages), Chains: len(batch), Done: done, Total: total, Lines: payload.Lines()}
			if err := step(s); err != nil {
				return err
			}
			if err := k.Restore(f, payload.Bytes(), iptables.NoFlushTables); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			for _, c := range batch {
				staged[c.Chain] = true
			}
			done += len(batch)
		}
		payload := Payload(p, f, staged)
		if payload.Empty() {
			continue
		}
		s := Step{Kind: Commit, Family: f, Lines: payload.Lines()}
		if err := step(s); err != nil {
			return err
		}
		if err := k.Restore(f, payload.Bytes(), iptables.NoFlushTables); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return step(Step{Kind: Check})
}

// verify reads back the chains the plan touched, which are the only ones
// its payloads named: each owned chain must hold the plan's desired rules
// (or be gone), each built-in chain svcnat's desired jumps, in order, and
// the same foreign rules as in before. Chains the payloads never named are
// not compared, so Docker or firewalld changing their own rules meanwhile
// does not fail the apply. Up to listLimit chains are read one by one;
// more (a cold start) with one full save per family.
func verify(k Kernel, p *planner.Plan, before map[rules.Family]*rules.Ruleset, listLimit int) error {
	for _, f := range rules.Families {
		var touched []planner.ChainChange
		for _, c := range p.Changes {
			if c.Family == f {
				touched = append(touched, c)
			}
		}
		if len(touched) == 0 {
			continue
		}
		read := func(table, chain string) ([]rules.Rule, bool, error) { return k.ListChain(f, table, chain) }
		if len(touched) > listLimit {
			rs, err := saveLike(k, f, p.Desired[f])
			if err != nil {
				return fmt.Errorf("verifying %s: reading the live rules: %w", f, err)
			}
			read = func(table, chain string) ([]rules.Rule, bool, error) {
				if t := rs.Table(table); t != nil && t.Chain(chain) != nil {
					return t.Chain(chain).Rules, true, nil
				}
				return nil, false, nil
			}
		}
		for _, c := range touched {
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

// verifyChain checks one touched chain as read back (got, and whether it
// exists) against the change that touched it.
func verifyChain(prefix string, c planner.ChainChange, got []rules.Rule, exists bool, before *rules.Ruleset) error {
	if !c.Builtin {
		switch {
		case c.Action == planner.Delete && exists:
			return fmt.Errorf("the plan deletes it, but it is still there")
		case c.Action == planner.Delete:
			return nil
		case !exists:
			return fmt.Errorf("the plan writes it, but it is not there")
		}
		if !rules.EqualRules(c.After, got) {
			return fmt.Errorf("its rules differ from the plan:\n%s", ruleDiff(c.After, got))
		}
		return nil
	}
	var owned, foreign []rules.Rule
	for _, r := range got {
		if rules.Owns(prefix, r.Target()) {
			owned = append(owned, r)
		} else {
			foreign = append(foreign, r)
		}
	}
	if !rules.EqualRules(c.After, owned) {
		return fmt.Errorf("svcnat's jumps differ from the plan:\n%s", ruleDiff(c.After, owned))
	}
	var was []rules.Rule
	if before != nil {
		if t := before.Table(c.Table); t != nil && t.Chain(c.Chain) != nil {
			for _, r := range t.Chain(c.Chain).Rules {
				if !rules.Owns(prefix, r.Target()) {
					was = append(was, r)
				}
			}
		}
	}
	if !rules.EqualRules(was, foreign) {
		return fmt.Errorf("rules svcnat does not own changed:\n%s", ruleDiff(was, foreign))
	}
	return nil
}

// Undo returns the owned chains of an applied plan to what they were in
// before (the snapshot the plan was applied from), because of cause: a
// check after the apply failed. It returns an *Error saying whether that
// worked, as Apply does on its own failures.
func Undo(k Kernel, p *planner.Plan, before map[rules.Family]*rules.Ruleset, cause error) error {
	return rollback(k, p, before, cause)
}

// rollback restores the owned chains to what they were in before, by
// planning from the current live rules back to that snapshot and applying
// it the same way.
func rollback(k Kernel, p *planner.Plan, before map[rules.Family]*rules.Ruleset, cause error) error {
	now, err := saveAll(k, p)
	if err != nil {
		return &Error{Err: cause, RollbackErr: err}
	}
	back := planner.New(p.Prefix, p.Backend, p.Live, now)
	for _, f := range rules.Families {
		if payload := Payload(back, f, nil); !payload.Empty() {
			if err := k.Restore(f, payload.Bytes(), iptables.NoFlushTables); err != nil {
				return &Error{Err: cause, RollbackErr: err}
			}
		}
	}
	if err := verify(k, back, before, ListLimitFor(p.Backend)); err != nil {
		return &Error{Err: cause, RollbackErr: err}
	}
	return &Error{Err: cause, RolledBack: true}
}

// families lists the families the plan touches or snapshots.
func families(p *planner.Plan) []rules.Family {
	var out []rules.Family
	for _, f := range rules.Families {
		if f == rules.IPv4 || len(p.Desired[f].Tables) > 0 || len(p.Live[f].Tables) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// saveLike reads f's live rules, sharing what they have in common with
// like when the kernel can (iptables.LikeSaver): a verification reads back
// mostly the rules it wrote.
func saveLike(k Kernel, f rules.Family, like *rules.Ruleset) (*rules.Ruleset, error) {
	if ls, ok := k.(iptables.LikeSaver); ok {
		return ls.SaveLike(f, like)
	}
	return k.Save(f)
}

func saveAll(k Kernel, p *planner.Plan) (map[rules.Family]*rules.Ruleset, error) {
	out := map[rules.Family]*rules.Ruleset{}
	for _, f := range families(p) {
		rs, err := k.Save(f)
		if err != nil {
			return nil, fmt.Errorf("reading the live %s rules: %w", f, err)
		}
		out[f] = rs
	}
	return out, nil
}
