package engine

import (
	"context"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// DestroyPlan is the plan Destroy would commit for prefix (plan
// -destroy): every chain of prefix and svcnat's jumps into them removed.
// It takes no lock and changes nothing. Saved (SavePlan), ApplySaved
// commits it as Destroy does.
func (e *Engine) DestroyPlan(prefix string) (*planner.Plan, error) {
	live, err := e.saveLive(nil)
	if err != nil {
		return nil, err
	}
	p := planner.New(prefix, e.Kernel.Name(), nil, live)
	p.Destroy = true
	if p.Interrupted, err = e.interrupted(prefix, live); err != nil {
		return nil, err
	}
	return p, e.unlockedAdopting(p)
}

// DestroyRefusal is ApplyRefusal for a plan DestroyPlan made: the error
// Destroy would refuse it with on this host (destroyRefusal), or nil. It
// reads the state without the lock and changes nothing.
func (e *Engine) DestroyRefusal(p *planner.Plan) (refusal, err error) {
	d, st, err := e.unlockedState()
	if err != nil {
		return nil, err
	}
	return e.destroyRefusal(d, st, p), nil
}

// unlockedState is the state directory and its record as a command that
// takes the lock would find them (a pending apply a reboot ended counts as
// settled), read without the lock and without creating the directory; an
// empty record when there is none, or against a dump, which is not this
// host.
func (e *Engine) unlockedState() (*state.Dir, *state.State, error) {
	if e.Kernel.ReadOnly() || !state.Exists(e.StateDir) {
		return nil, &state.State{}, nil
	}
	d, err := state.Open(e.StateDir)
	if err != nil {
		return nil, nil, err
	}
	st, err := d.Load()
	if err != nil {
		return nil, nil, err
	}
	if st, err = settledByReboot(d, st); err != nil {
		return nil, nil, err
	}
	return d, st, nil
}

// destroyRefusal is every refusal of Destroy, in one place, for the plan p
// under the state st; Destroy, plan -destroy (DestroyRefusal) and the
// apply of a saved destroy plan (destroySaved) all ask it, so that they
// cannot disagree: a state directory of another network namespace
// (namespaceRefusal), an apply awaiting confirmation, chains of the
// prefix that another state directory wrote or this one cannot prove it
// wrote (ownershipRefusal, unless Adopt), and what commit refuses
// (commitRefusal). Against a dump only the rules can refuse.
func (e *Engine) destroyRefusal(d *state.Dir, st *state.State, p *planner.Plan) error {
	if !e.Kernel.ReadOnly() {
		if err := e.namespaceRefusal(OpDestroy, d, st); err != nil {
			return err
		}
		if err := refusePending(OpDestroy, d, st); err != nil {
			return err
		}
		if err := e.ownershipRefusal(OpDestroy, d, st, p); err != nil {
			return err
		}
	}
	return e.commitRefusal(OpDestroy, p)
}

// destroySaved is ApplySaved of a destroy plan: under the lock it refuses
// what Destroy refuses (destroyRefusal), a plan for a prefix other than
// the recorded one (*PlanPrefixError: removing those chains would record
// that nothing is owned while the recorded ones stay) and a stale plan
// (savedLive), then commits it as Destroy does, without asking.
func (e *Engine) destroySaved(ctx context.Context, p *planner.Plan) (*Result, error) {
	var res *Result
	err := e.withLock(ctx, func(d *state.Dir, st *state.State) error {
		// As ApplySaved: who may destroy here before the live rules are
		// read, the rest of destroy's refusals once savedLive has found
		// them to be the plan's snapshot.
		if err := e.savedPlanFirst(OpDestroy, d, st, p); err != nil {
			return err
		}
		live, err := e.savedLive(p)
		if err != nil {
			return err
		}
		if err := e.destroyRefusal(d, st, p); err != nil {
			return err
		}
		e.planned(Planned{Op: OpDestroy, Plan: p})
		res, err = e.destroyCommit(ctx, d, st, p, live, true)
		return err
	})
	return res, err
}

// destroyCommit commits a destroy plan p made from live under the lock:
// on a backend the state directory does not record it removes that set
// and keeps the record (destroyUnrecorded), else it commits and records
// as any change does; then it removes reconcile's canary chains and the
// tables svcnat's applies created that hold nothing else. approved: the
// plan was reviewed before (a saved plan), nobody is asked.
func (e *Engine) destroyCommit(ctx context.Context, d *state.Dir, st *state.State, p *planner.Plan, live map[backend.Family]*backend.Ruleset, approved bool) (*Result, error) {
	var res *Result
	var err error
	if e.unrecorded(st) {
		res, err = e.destroyUnrecorded(ctx, d, p, live, approved)
	} else {
		res, err = e.commit(ctx, OpDestroy, d, st, p, live, "", approved)
	}
	if err != nil {
		return res, err
	}
	if err := e.removeCanaries(p.Prefix); err != nil {
		return res, err
	}
	res.TablesRemoved, err = e.removeCreatedTables(d)
	return res, err
}
