package engine

import (
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// Status is what svcnat owns on the host now, and how it differs from
// what it last applied.
type Status struct {
	Prefix  string
	Backend backend.Name
	// Owned groups the owned live rules by service.
	Owned *backend.Inventory
	// State is the state directory's record; Generation 0 when nothing
	// was recorded.
	State    *state.State
	StateDir string
	// Drift is a plan from the last recorded generation to the live
	// rules: what changed outside svcnat since (+ present now, - gone
	// since). Nil when no generation is recorded.
	Drift *planner.Plan
	// Pending is the apply awaiting confirmation, if one is.
	Pending *PendingApply
	// Interrupted lists the owned chains an interrupted apply of this
	// state directory left (see interruptedIn).
	Interrupted []planner.Left
	// Health is svcnat reconcile's health view, nil when the state
	// directory holds none.
	Health *HealthStatus
}

// Show reads the owned live rules of prefix and compares them with the
// last recorded generation. It takes no lock and changes nothing. It
// refuses a state directory of another network namespace (*NamespaceError):
// compared with it every recorded chain would read as gone.
func (e *Engine) Show(prefix string) (*Status, error) {
	live, err := e.saveLive(nil)
	if err != nil {
		return nil, err
	}
	s := &Status{Prefix: prefix, Backend: e.Kernel.Name(), Owned: e.Pure().Inventory(prefix, live), StateDir: e.StateDir}
	d, err := state.Open(e.StateDir)
	if err != nil {
		return nil, err
	}
	if s.State, err = d.Load(); err != nil {
		return nil, err
	}
	if err := e.namespaceRefusal(OpShow, d, s.State); err != nil {
		return nil, err
	}
	if s.State.Pending != nil {
		p := pendingApply(d, s.State)
		s.Pending = &p
	}
	var applied map[backend.Family]*backend.Ruleset
	if s.State.Generation > 0 {
		if applied, err = generationRules(d, s.State, s.State.Generation); err != nil {
			return nil, err
		}
		s.Drift = planner.New(prefix, s.Backend, live, applied)
	}
	if s.Interrupted, err = interruptedIn(d, s.State, prefix, live, applied); err != nil {
		return nil, err
	}
	s.Health = e.healthStatus()
	return s, nil
}
