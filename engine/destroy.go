package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/svcnat/svcnat/applier"
	"github.com/svcnat/svcnat/iptables"
	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
	"github.com/svcnat/svcnat/state"
)

// unrecorded reports whether this engine's backend is not the one the
// state directory records svcnat's chains in: svcnat's chains were found
// in both backends (a boot-time restore of saved rules into the other
// backend leaves such a copy), and the operator chose this one with
// --backend (iptables.Open lets an explicit backend through then).
func (e *Engine) unrecorded(st *state.State) bool {
	b := e.Kernel.Backend()
	return st.Prefix != "" && st.Backend != "" && b != iptables.File && st.Backend != string(b)
}

// destroyUnrecorded removes the set of p's chains in a backend the state
// directory does not record, and records nothing: the record, its
// generations and backups describe the set in the other backend, which
// stays. It asks, commits, verifies and rolls back on failure like any
// destroy (see commit).
func (e *Engine) destroyUnrecorded(ctx context.Context, d *state.Dir, p *planner.Plan, live map[rules.Family]*rules.Ruleset) (*Result, error) {
	res := &Result{Op: OpDestroy, Plan: p, StateDir: d.Path(), KeptRecord: true}
	switch {
	case len(p.Blocked) > 0:
		return res, &BlockedError{Op: OpDestroy, Blocked: p.Blocked}
	case p.Empty():
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("%s interrupted before the commit (%v); nothing was changed", OpDestroy, context.Cause(ctx))
	}
	if e.Hooks.Approve != nil {
		ok, err := e.Hooks.Approve(ctx, p)
		if err != nil {
			return res, err
		}
		if !ok {
			return res, cancelledError{OpDestroy}
		}
	}
	start := time.Now()
	backend := string(e.Kernel.Backend())
	opts := applier.Options{Batch: applier.BatchFor(backend), ListLimit: applier.ListLimitFor(backend), Step: e.stepper(res)}
	if err := applier.Apply(ctx, e.Kernel, p, live, opts); err != nil {
		return res, fmt.Errorf("%s failed: %w", OpDestroy, err)
	}
	res.Applied, res.Took = true, time.Since(start)
	return res, nil
}
