package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/state"
)

// Origin is who runs the engine, when that decides what a generation is
// recorded as made by: "" for the command line.
type Origin string

// OriginReconcile is the reconcile daemon: its applies are recorded as
// made by MadeByReconcile.
const OriginReconcile Origin = "reconcile"

// What recorded a generation (state.GenerationInfo.MadeBy).
const (
	MadeByApply     = "apply"
	MadeBySavedPlan = "saved_plan"
	MadeByRollback  = "rollback"
	MadeByRevert    = "revert"
	MadeByReconcile = "reconcile"
	MadeByRepair    = "repair"
	MadeByDestroy   = "destroy"
)

// madeBy is what a commit of op records as having made its generation:
// the op, a saved plan's apply (approved when it was made), the daemon's
// applies, and an apply (the daemon's too) that only caught the record up
// with rules already right (repaired). A rollback or destroy that finds
// the rules right is still that rollback or destroy: "repair" is what an
// operator reads as "an earlier apply stopped before recording".
func (e *Engine) madeBy(op Op, approved, repaired bool) string {
	switch {
	case op != OpApply:
		return string(op)
	case repaired:
		return MadeByRepair
	case e.Origin == OriginReconcile:
		return MadeByReconcile
	case approved:
		return MadeBySavedPlan
	}
	return MadeByApply
}

// History is the generations a state directory keeps, oldest first.
type History struct {
	StateDir string
	// Current is the current generation (0: none recorded).
	Current int64
	// Namespace is the network namespace the rules are in, nil when the
	// state directory records none.
	Namespace   *state.Namespace
	Generations []Generation
}

// Generation is one kept generation, as history lists it.
type Generation struct {
	state.GenerationInfo
	// Chains and Rules count its owned chains (built-in ones not
	// counted) and rules, as show counts the live ones; -1 when its
	// files cannot be read.
	Chains, Rules int
	Current       bool
}

// ReadHistory lists the generations the state directory at stateDir
// keeps, without the lock and without creating it: a directory that does
// not exist has none.
func ReadHistory(stateDir string) (*History, error) {
	h := &History{StateDir: stateDir, Generations: []Generation{}}
	if !state.Exists(stateDir) {
		return h, nil
	}
	d, err := state.Open(stateDir)
	if err != nil {
		return nil, err
	}
	st, err := d.Load()
	if err != nil {
		return nil, err
	}
	h.Current, h.Namespace = st.Generation, st.Namespace
	for _, g := range st.Generations {
		chains, rules := countGeneration(d, g)
		h.Generations = append(h.Generations, Generation{GenerationInfo: g, Chains: chains, Rules: rules, Current: g.Generation == st.Generation})
	}
	return h, nil
}

// countGeneration counts the chains and rules of a generation's files
// without parsing them (backend.ScanText). -1, -1 when a file it records
// cannot be read.
func countGeneration(d *state.Dir, g state.GenerationInfo) (chains, nrules int) {
	for _, f := range backend.Families {
		if !slices.Contains(g.Rules, f.Key()) {
			continue
		}
		data, err := d.ReadGeneration(g.Generation, f.Key())
		if err != nil {
			return -1, -1
		}
		c, n := backend.ScanText(data)
		chains, nrules = chains+len(c), nrules+n
	}
	return chains, nrules
}

// kept lists the generation numbers st keeps, oldest first.
func kept(st *state.State) []int64 {
	out := make([]int64, len(st.Generations))
	for i, g := range st.Generations {
		out[i] = g.Generation
	}
	return out
}

// GenerationGoneError refuses a rollback to a generation the state
// directory does not keep (pruned, or never recorded), or to the current
// one. Nothing was changed.
type GenerationGoneError struct {
	Generation int64
	Current    int64
	Kept       []int64
	StateDir   string
}

func (e *GenerationGoneError) Error() string {
	if len(e.Kept) == 0 {
		return fmt.Sprintf("generation %d is not kept in %s, which keeps none; nothing was changed", e.Generation, e.StateDir)
	}
	nums := make([]string, len(e.Kept))
	for i, n := range e.Kept {
		nums[i] = fmt.Sprint(n)
	}
	if e.Generation == e.Current {
		return fmt.Sprintf("generation %d is the current generation: there is nothing to roll back to; %s keeps generations %s; nothing was changed",
			e.Generation, e.StateDir, strings.Join(nums, ", "))
	}
	return fmt.Sprintf("generation %d is not kept in %s; it keeps generations %s; nothing was changed",
		e.Generation, e.StateDir, strings.Join(nums, ", "))
}

// Hint says where to see them.
func (e *GenerationGoneError) Hint() string {
	return "svcnat history lists the kept generations; pick one of them with rollback --to N"
}

// rollbackTarget is the generation a rollback to gen returns to: the
// previous one for 0 (state.ErrNoPrevious without one), else gen, which
// the state must keep and which must not be the current one.
func rollbackTarget(d *state.Dir, st *state.State, gen int64) (state.GenerationInfo, error) {
	if gen == 0 {
		return st.Previous()
	}
	info, ok := st.Info(gen)
	if !ok || gen == st.Generation {
		return state.GenerationInfo{}, &GenerationGoneError{Generation: gen, Current: st.Generation, Kept: kept(st), StateDir: d.Path()}
	}
	return info, nil
}
