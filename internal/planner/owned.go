// Package planner computes what svcnat would change: it diffs the owned
// part of the live rules chain by chain against the desired rules and
// returns the plan as a complete value (per-chain changes with their
// diffs, the live snapshot and its fingerprint, the foreign rules that
// block it). What the changes mean for services is the backend's to say
// (backend.Describer). It never touches a kernel and never prints; the
// engine runs plans and the views in cli print them.
package planner

import (
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/state"
)

// Fingerprint is a digest of owned rules per family, recorded in saved plans
// so that applying one made against other live rules is refused: the one
// rules digest (state.SectionsDigest) of each family's text, named for
// people ("IPv4"), after a line naming the backend.
func Fingerprint(name backend.Name, owned map[backend.Family]*backend.Ruleset) string {
	sections := make([]state.Section, 0, len(backend.Families))
	for _, f := range backend.Families {
		sections = append(sections, state.Section{Name: f.String(), Write: owned[f].WriteText})
	}
	digest, _ := state.SectionsDigest(name.Canonical().Digested()+"\n", sections...) // writing to a hash never fails
	return digest
}
