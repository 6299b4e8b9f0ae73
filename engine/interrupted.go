package engine

import (
	"github.com/svcnat/svcnat/iptables"
	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
	"github.com/svcnat/svcnat/state"
)

// interrupted lists the owned chains of prefix in live (whole dumps) that
// an interrupted apply left: nothing reaches them, and the recorded
// generation does not have them (planner.Interrupted). The recorded
// generation is read only when some owned chain is unreached, which on a
// host no apply was killed on is never: at 10,000 services it is 25 MB.
// It takes no lock and creates no state directory. Against a saved dump
// no generation is read: the dump is not this host, whose state directory
// says nothing of it.
func (e *Engine) interrupted(prefix string, live map[rules.Family]*rules.Ruleset) ([]planner.Left, error) {
	left := planner.Interrupted(prefix, live, nil)
	if len(left) == 0 || e.Kernel.Backend() == iptables.File || e.StateDir == "" || !state.Exists(e.StateDir) {
		return left, nil
	}
	st, err := readState(e.StateDir)
	if err != nil || st == nil || st.Generation == 0 {
		return left, err
	}
	d, err := state.Open(e.StateDir)
	if err != nil {
		return nil, err
	}
	recorded, err := generationRules(d, st, st.Generation)
	if err != nil {
		return nil, err
	}
	return planner.Interrupted(prefix, live, recorded), nil
}
