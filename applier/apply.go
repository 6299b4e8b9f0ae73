package applier

import (
	"context"
	"errors"
	"fmt"

	"github.com/svcnat/svcnat/iptables"
	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
)

// Kernel is what the applier needs of iptables: a dump and a restore per
// family. It is a subset of iptables.Interface, so the real runner and
// iptables.Fake satisfy it.
type Kernel interface {
	Save(f rules.Family) (*rules.Ruleset, []byte, error)
	Restore(f rules.Family, payload []byte, flags iptables.RestoreFlags) error
}

// DefaultBatch is how many chains one staging transaction creates at most.
const DefaultBatch = 1000

// Options tunes an apply.
type Options struct {
	// Batch bounds the chains created per staging transaction (0: DefaultBatch).
	Batch int
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
	Chains int          // Stage: the chains the batch creates
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

// ErrStale reports that the live owned rules are no longer those the plan
// was computed against.
var ErrStale = errors.New("the live rules changed since the plan was made")

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

// Apply commits the plan. It first checks that the live owned rules still
// match the plan's snapshot, then writes per family the staged creations
// and the one traffic-visible transaction, reads everything back and
// verifies that the owned rules equal the desired ones and that no foreign
// rule changed. On any failure, including ctx being cancelled by a signal
// between steps, it restores the owned chains to the snapshot and returns
// an *Error. A transaction already handed to iptables-restore is let finish
// so that a signal never leaves half a transaction.
func Apply(ctx context.Context, k Kernel, p *planner.Plan, opts Options) error {
	if opts.Batch == 0 {
		opts.Batch = DefaultBatch
	}
	before, err := saveAll(k, p)
	if err != nil {
		return err
	}
	if fp := planner.LiveFingerprint(p.Prefix, p.Backend, before); fp != p.Fingerprint {
		return fmt.Errorf("%w (plan made against %s, live is %s)", ErrStale, short(p.Fingerprint), short(fp))
	}
	if p.Empty() {
		return nil
	}
	if err := commit(ctx, k, p, opts); err != nil {
		return rollback(k, p, before, err)
	}
	if err := Verify(k, p, before); err != nil {
		return rollback(k, p, before, err)
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
		for i, batch := range stages {
			s := Step{Kind: Stage, Family: f, N: i + 1, Of: len(stages), Chains: len(batch)}
			if err := step(s); err != nil {
				return err
			}
			if err := k.Restore(f, stagePayload(batch), iptables.NoFlushTables); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			for _, c := range batch {
				staged[c.Chain] = true
			}
		}
		payload := Payload(p, f, staged)
		if payload == nil {
			continue
		}
		s := Step{Kind: Commit, Family: f}
		if err := step(s); err != nil {
			return err
		}
		if err := k.Restore(f, payload, iptables.NoFlushTables); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return step(Step{Kind: Check})
}

// Verify reads the rules back: the owned ones must equal the plan's
// desired rules, and the foreign rules of the built-in chains the payload
// edited (the only foreign chains it names) must equal those in before.
// Foreign chains the payload never names are not compared, so Docker or
// firewalld changing their own rules meanwhile does not fail the apply.
func Verify(k Kernel, p *planner.Plan, before map[rules.Family]*rules.Ruleset) error {
	after, err := saveAll(k, p)
	if err != nil {
		return err
	}
	for _, f := range rules.Families {
		if after[f] == nil {
			continue
		}
		got, want := after[f].Owned(p.Prefix).Text(), p.Desired[f].Text()
		if got != want {
			return fmt.Errorf("verifying %s: the live owned rules differ from the plan:\n%s", f, lineDiff(want, got))
		}
		if before[f] != nil {
			touched := touchedBuiltins(p, f)
			b, a := foreignText(before[f], p.Prefix, touched), foreignText(after[f], p.Prefix, touched)
			if b != a {
				return fmt.Errorf("verifying %s: rules svcnat does not own changed:\n%s", f, lineDiff(b, a))
			}
		}
	}
	return nil
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
		if payload := Payload(back, f, nil); payload != nil {
			if err := k.Restore(f, payload, iptables.NoFlushTables); err != nil {
				return &Error{Err: cause, RollbackErr: err}
			}
		}
	}
	if err := Verify(k, back, before); err != nil {
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

func saveAll(k Kernel, p *planner.Plan) (map[rules.Family]*rules.Ruleset, error) {
	out := map[rules.Family]*rules.Ruleset{}
	for _, f := range families(p) {
		rs, _, err := k.Save(f)
		if err != nil {
			return nil, fmt.Errorf("reading the live %s rules: %w", f, err)
		}
		out[f] = rs
	}
	return out, nil
}

func short(fp string) string {
	if len(fp) > 19 {
		return fp[:19]
	}
	return fp
}
