package engine

import (
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// Unrecorded reports whether the live rules, which the empty plan p finds
// equal to the configuration's, are not the rules the state directory
// records: an apply changed them, then failed to record its generation
// (a full disk), or was killed before it did. Committing p (ApplySaved,
// Apply) records them as a generation; a daemon that only plans would
// otherwise see nothing to do, and the record would stay behind for good.
// It reads the record without the lock, as Recorded does.
func (e *Engine) Unrecorded(p *planner.Plan) (bool, error) {
	st, err := readState(e.StateDir)
	if err != nil {
		return false, err
	}
	if st == nil {
		st = &state.State{}
	}
	_, rulesDigest := generationFiles(p)
	return recordBehind(st, p, rulesDigest), nil
}

// recordBehind is the test commit makes of an empty plan before it
// records one: a record that names other rules than p's (its Desired,
// whose digest is rulesDigest) is behind, except on a host svcnat never
// recorded anything for, where no rules at all are wanted.
func recordBehind(st *state.State, p *planner.Plan, rulesDigest string) bool {
	return !(st.Generation == 0 && blank(p)) && st.RulesDigest != rulesDigest
}
