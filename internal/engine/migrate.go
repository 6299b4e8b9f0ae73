package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// Migration is what an apply that moved svcnat's rules between backends
// (Migrate) did to the backend it moved them from.
type Migration struct {
	// From is the backend the rules were in.
	From backend.Name
	// Plan removes svcnat's set there: every chain (or object) of the
	// prefix and svcnat's jumps into them.
	Plan *planner.Plan
	// Removed: the set was removed (false when the migration stopped
	// before, or the backend held nothing to remove).
	Removed bool
	// Lines and Took are the removal's transactions, as Result's.
	Lines int
	Took  time.Duration
	// TablesRemoved are the tables of that backend svcnat's applies had
	// created and that held nothing else ("IPv4 nat"), given back.
	TablesRemoved []string
}

// Migrate is Apply on this engine's kernel while svcnat's rules are in
// the backend from (kernel.Detection.From): one documented step that
// never leaves the services without rules. Under one hold of the locks it
// plans the configuration on this kernel (refused as Apply refuses it)
// and the removal of svcnat's set in from (refused as Destroy refuses it:
// ownership proved by the state directory's generations, blocked
// deletions), all before anything is written; shows both plans
// (Hooks.Planned, the second with Removal set); asks once; commits and
// records the new set as Apply does (the record names this backend);
// then removes the old set, reconcile's canaries there, and the tables
// svcnat's applies created there that hold nothing else, recording
// nothing more. A failed first commit changes nothing (it rolls back); a
// failed removal keeps the new set and returns a *MigrationError, both
// sets being live. An apply awaiting confirmation cannot migrate (a
// revert would have to restore the old backend's set):
// Confirmation refuses it with a *MigrationConfirmError.
func (e *Engine) Migrate(ctx context.Context, cfg *config.Config, node string, from backend.Kernel) (*Result, error) {
	if e.Confirmation != nil {
		return nil, &MigrationConfirmError{From: from.Name(), To: e.Kernel.Name()}
	}
	var res *Result
	err := e.withLock(ctx, func(d *state.Dir, st *state.State) error {
		mp, err := e.planMigration(d, st, cfg, node, from)
		if err != nil {
			return err
		}
		p, m := mp.plan, mp.m
		e.planned(Planned{Op: OpApply, Plan: p, Refusal: mp.refusal})
		mp.old.planned(Planned{Op: OpApply, Plan: m.Plan, Refusal: mp.removal, Removal: true})
		if mp.refusal != nil {
			return mp.refusal
		}
		if mp.removal != nil {
			return mp.removal
		}
		// One question for both plans: commit asks for a plan that
		// changes something.
		if p.Empty() && !m.Plan.Empty() {
			if err := e.ask(ctx, OpApply, p, false); err != nil {
				return err
			}
		}
		res, err = e.commit(ctx, OpApply, d, st, p, mp.live, ConfigDigest(cfg), false)
		if res != nil {
			res.MigratedFrom = m
		}
		if err != nil {
			return err
		}
		if err := mp.old.removeSet(ctx, d, m, mp.liveFrom); err != nil {
			return &MigrationError{From: from.Name(), To: e.Kernel.Name(), Generation: res.Generation, StateDir: d.Path(), Err: err}
		}
		return nil
	})
	return res, err
}

// migrationPlans are a migration's two plans, made under one reading of
// the state directory (planMigration).
type migrationPlans struct {
	// plan is the configuration's on this engine's kernel, made from
	// live; refusal is Apply's refusal of it (nil: it would go ahead).
	plan    *planner.Plan
	live    map[backend.Family]*backend.Ruleset
	refusal error
	// old is this engine on the backend the rules move from, and m's
	// Plan the removal of svcnat's set there, made from liveFrom;
	// removal is Destroy's refusal of it.
	old      *Engine
	m        *Migration
	liveFrom map[backend.Family]*backend.Ruleset
	removal  error
}

// planMigration makes, under the state st, what Migrate shows and checks
// before anything is written: the plan of cfg on this kernel (refused as
// Apply refuses it) and the removal of svcnat's set in from (refused as
// Destroy refuses it). Migrate calls it under the locks, PlanMigration
// without them, so that plan and apply cannot disagree.
func (e *Engine) planMigration(d *state.Dir, st *state.State, cfg *config.Config, node string, from backend.Kernel) (*migrationPlans, error) {
	// The engine on the old backend (under Migrate, within the same hold
	// of the locks: held names the namespace's owner record).
	old := *e
	old.Kernel, old.Detection = from, kernel.Detection{}
	p, live, err := e.plan(cfg, node)
	if err != nil {
		return nil, err
	}
	if err := e.noteAdopting(d, st, p); err != nil {
		return nil, err
	}
	liveFrom, err := old.saveLive(nil)
	if err != nil {
		return nil, fmt.Errorf("reading svcnat's rules in the %s backend: %w", from.Name(), err)
	}
	p.MovesFrom = from.Name()
	m := &Migration{From: from.Name(), Plan: planner.New(p.Prefix, from.Name(), nil, liveFrom)}
	if err := old.noteAdopting(d, st, m.Plan); err != nil {
		return nil, err
	}
	return &migrationPlans{plan: p, live: live, refusal: e.applyRefusal(d, st, p),
		old: &old, m: m, liveFrom: liveFrom, removal: old.destroyRefusal(d, st, m.Plan)}, nil
}

// PlanMigration is Plan for an apply that moves svcnat's rules from the
// backend from (Migrate): the plan of cfg on this kernel and the removal
// of svcnat's set in from, made as Migrate makes them but without the
// lock, with the refusals Migrate would meet (nil: it would go ahead).
// It changes nothing.
func (e *Engine) PlanMigration(cfg *config.Config, node string, from backend.Kernel) (p, removal *planner.Plan, refusal, removalRefusal error, err error) {
	d, st, err := e.unlockedState()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	mp, err := e.planMigration(d, st, cfg, node, from)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return mp.plan, mp.m.Plan, mp.refusal, mp.removal, nil
}

// removeSet removes the set of m.Plan (made from live) in this engine's
// backend, which the state directory no longer records, then the canary
// chains of its prefix and the tables svcnat's applies created there: the
// last steps of Migrate. It records nothing: the record describes the
// new set.
func (e *Engine) removeSet(ctx context.Context, d *state.Dir, m *Migration, live map[backend.Family]*backend.Ruleset) error {
	if !m.Plan.Empty() {
		res := &Result{}
		if err := e.applyPlan(ctx, m.Plan, live, res); err != nil {
			return err
		}
		m.Removed, m.Lines, m.Took = res.Applied, res.Lines, res.Took
	}
	if err := e.removeCanaries(m.Plan.Prefix); err != nil {
		return err
	}
	var err error
	m.TablesRemoved, err = e.removeCreatedTables(d)
	return err
}

// MigrationError is a migration whose new set was committed and recorded,
// but whose removal of the old set failed: svcnat's rules are live in
// both backends (the services keep theirs), and the state directory
// records the new set.
type MigrationError struct {
	From, To   backend.Name
	Generation int64 // recorded for the new set
	StateDir   string
	Err        error
}

func (e *MigrationError) Error() string {
	return fmt.Sprintf("the rules are applied in the %s backend (generation %d recorded in %s), but removing svcnat's rules from the %s backend failed: %v; both sets are live",
		e.To, e.Generation, e.StateDir, e.From, e.Err)
}

func (e *MigrationError) Unwrap() error { return e.Err }

// Hint says how to finish the migration.
func (e *MigrationError) Hint() string {
	return fmt.Sprintf("run svcnat destroy --backend %s to remove the old set (it keeps the record of the %s set)", e.From, e.To)
}

// MigrationConfirmError refuses --confirm-timeout on an apply that moves
// svcnat's rules between backends: its revert would have to put back the
// set it removed from the other backend, which a revert, working on one
// backend, cannot. Nothing was changed.
type MigrationConfirmError struct{ From, To backend.Name }

func (e *MigrationConfirmError) Error() string {
	return fmt.Sprintf("apply --backend %s moves svcnat's rules from the %s backend, which cannot await confirmation (a revert would have to restore the rules in both backends); nothing was changed",
		e.To, e.From)
}

// Hint says how to migrate safely anyway.
func (e *MigrationConfirmError) Hint() string {
	return "migrate without --confirm-timeout (a failing --probe still keeps the old rules), then apply with it"
}
