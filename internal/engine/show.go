package engine

import (
	"github.com/svcnat/svcnat/internal/health"
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
	// HealthDrift is the part of the difference from the recorded
	// generation that reconcile's health checks made (the rules of
	// services it checks, whose endpoints it takes out and puts back
	// without recording a generation): not drift. Nil without a fresh
	// health view.
	HealthDrift *planner.Plan
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
	if s.Drift != nil && !s.Drift.Empty() && s.Health != nil && s.Health.View != nil && !s.Health.Stale {
		s.Drift, s.HealthDrift = e.splitHealthDrift(prefix, s.Drift, live, applied, s.Health.View)
	}
	return s, nil
}

// splitHealthDrift splits drift (from the recorded rules, applied, to
// the live ones) into what the health checks explain and the rest: a
// change is health's when every rule or element it adds or removes
// belongs, in the live rules or the recorded ones, to a service the view
// checks. Reconcile changes those services' endpoints without recording
// a generation, so the record is behind them by design.
func (e *Engine) splitHealthDrift(prefix string, drift *planner.Plan, live, applied map[backend.Family]*backend.Ruleset, v *health.View) (rest, healthy *planner.Plan) {
	checked := map[string]bool{}
	for k := range v.Endpoints {
		checked[k.Service] = true
	}
	owner := map[string]string{}
	for _, rs := range []map[backend.Family]*backend.Ruleset{live, applied} {
		for svc, locs := range e.Pure().Inventory(prefix, rs).Services {
			for _, l := range locs {
				owner[locatedKey(l.Family, l.Table, l.Rule)] = svc
			}
		}
	}
	explained := func(c backend.ChainChange) bool {
		before := map[string]int{}
		for _, r := range c.Before {
			before[r.String()]++
		}
		var differ []backend.Rule
		for _, r := range c.After {
			if before[r.String()] > 0 {
				before[r.String()]--
				continue
			}
			differ = append(differ, r)
		}
		for _, r := range c.Before {
			if before[r.String()] > 0 {
				before[r.String()]--
				differ = append(differ, r)
			}
		}
		if len(differ) == 0 {
			return false // reordered: not what a verdict does
		}
		for _, r := range differ {
			if r.Chain == "" {
				r.Chain = c.Chain
			}
			if !checked[owner[locatedKey(c.Family, c.Table, r)]] {
				return false
			}
		}
		return true
	}
	r, h := *drift, *drift
	r.Changes, h.Changes = nil, nil
	for _, c := range drift.Changes {
		if explained(c) {
			h.Changes = append(h.Changes, c)
		} else {
			r.Changes = append(r.Changes, c)
		}
	}
	return &r, &h
}

func locatedKey(f backend.Family, table string, r backend.Rule) string {
	return f.Key() + " " + table + " " + r.Chain + " " + r.String()
}
