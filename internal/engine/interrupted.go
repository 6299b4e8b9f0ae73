package engine

import (
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// interrupted lists the owned chains of prefix in live (whole dumps) that
// an interrupted apply of this state directory left (see
// interruptedIn). It takes no lock and creates no state directory.
// Against a saved dump it names none: the dump is not this host, whose
// state directory proves nothing of it.
func (e *Engine) interrupted(prefix string, live map[backend.Family]*backend.Ruleset) ([]planner.Left, error) {
	if e.Kernel.ReadOnly() || e.StateDir == "" || !state.Exists(e.StateDir) {
		return nil, nil
	}
	d, err := state.Open(e.StateDir)
	if err != nil {
		return nil, err
	}
	st, err := d.Load()
	if err != nil {
		return nil, err
	}
	return interruptedIn(d, st, prefix, live, nil)
}

// interruptedIn lists the chains "interrupted" means, the one source of
// it: those an apply of d noted it began to create (intentFile, which is
// also what spares them the *UnrecordedError), that nothing reaches and
// that the current generation does not have (planner.Interrupted). An
// unreferenced chain of the prefix no apply noted is not interrupted: it
// is one the refusal names as unrecorded. recorded is the current
// generation's rules when the caller read them (nil: read here, only
// when some noted chain is live and unreached, which on a host no apply
// was killed on is never: at 10,000 services they are 25 MB).
func interruptedIn(d *state.Dir, st *state.State, prefix string, live, recorded map[backend.Family]*backend.Ruleset) ([]planner.Left, error) {
	in, err := readIntent(d)
	if err != nil || len(in.Chains) == 0 {
		return nil, err
	}
	began := make(map[string]bool, len(in.Chains))
	for _, k := range in.Chains {
		began[k] = true
	}
	left := planner.Interrupted(prefix, live, recorded, began)
	if len(left) == 0 || recorded != nil || st.Generation == 0 {
		return left, nil
	}
	if recorded, err = generationRules(d, st, st.Generation); err != nil {
		return nil, err
	}
	return planner.Interrupted(prefix, live, recorded, began), nil
}
