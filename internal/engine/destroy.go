package engine

import (
	"context"
	"fmt"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// unrecorded reports whether this engine's backend is not the one the
// state directory records svcnat's chains in: svcnat's chains were found
// in both backends (a boot-time restore of saved rules into the other
// backend leaves such a copy), and the operator chose this one with
// --backend (kernel.Open lets an explicit backend through then).
func (e *Engine) unrecorded(st *state.State) bool {
	return st.Prefix != "" && st.Backend != "" && !e.Kernel.ReadOnly() && st.Backend != e.Kernel.Name()
}

// destroyUnrecorded removes the set of p's chains in a backend the state
// directory does not record, and records nothing: the record and its
// generations describe the set in the other backend, which stays. It asks
// (unless approved), commits, verifies and rolls back on failure like any
// destroy (see commit).
func (e *Engine) destroyUnrecorded(ctx context.Context, d *state.Dir, p *planner.Plan, live map[backend.Family]*backend.Ruleset, approved bool) (*Result, error) {
	res := &Result{Op: OpDestroy, Plan: p, StateDir: d.Path(), KeptRecord: true}
	if err := e.commitRefusal(OpDestroy, p); err != nil || p.Empty() {
		return res, err
	}
	if err := e.ask(ctx, OpDestroy, p, approved); err != nil {
		return res, err
	}
	if err := e.applyPlan(ctx, p, live, res); err != nil {
		return res, fmt.Errorf("%s failed: %w", OpDestroy, err)
	}
	return res, nil
}
