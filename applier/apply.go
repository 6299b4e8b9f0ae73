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
	// Step, when set, is called before each transaction with its name; the
	// CLI uses it for progress and tests use it to inject faults.
	Step func(name string) error
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
	if fp := planner.Fingerprint(p.Backend, ownedAll(before, p.Prefix)); fp != p.Fingerprint {
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
	step := func(name string) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted before %s: %w", name, context.Cause(ctx))
		}
		if opts.Step != nil {
			return opts.Step(name)
		}
		return nil
	}
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		staged := map[string]bool{}
		for i, batch := range Stages(p, f, opts.Batch) {
			name := fmt.Sprintf("%s stage %d", f, i+1)
			if err := step(name); err != nil {
				return err
			}
			if err := k.Restore(f, stagePayload(batch), iptables.NoFlushTables); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			for _, c := range batch {
				staged[c.Chain] = true
			}
		}
		payload := Payload(p, f, staged)
		if payload == nil {
			continue
		}
		name := fmt.Sprintf("%s commit", f)
		if err := step(name); err != nil {
			return err
		}
		if err := k.Restore(f, payload, iptables.NoFlushTables); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return step("verify")
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
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
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
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
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
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
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

func ownedAll(live map[rules.Family]*rules.Ruleset, prefix string) map[rules.Family]*rules.Ruleset {
	out := map[rules.Family]*rules.Ruleset{}
	for f, rs := range live {
		out[f] = rs.Owned(prefix)
	}
	return out
}

func short(fp string) string {
	if len(fp) > 19 {
		return fp[:19]
	}
	return fp
}
