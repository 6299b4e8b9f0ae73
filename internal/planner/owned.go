// Package planner computes what svcnat would change: it diffs the owned
// part of the live rules chain by chain against the desired rules and
// returns the plan as a value (per-chain changes, the live snapshot and its
// fingerprint, the foreign rules that block it), and summarizes a plan by
// service for the views. It never runs iptables and never prints; the
// engine runs plans and the views in cli print them.
package planner

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// Fingerprint is a digest of owned rules per family, recorded in saved plans
// so that applying one made against other live rules is refused.
func Fingerprint(backend string, owned map[rules.Family]*rules.Ruleset) string {
	h := sha256.New()
	h.Write([]byte(backend + "\n"))
	for _, f := range rules.Families {
		h.Write([]byte(f.String() + "\n"))
		h.Write([]byte(owned[f].Text()))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// LiveFingerprint is the Fingerprint of the part of live that prefix owns:
// what a plan made now against live would record.
func LiveFingerprint(prefix, backend string, live map[rules.Family]*rules.Ruleset) string {
	owned := map[rules.Family]*rules.Ruleset{}
	for f, rs := range live {
		owned[f] = rs.Owned(prefix)
	}
	return Fingerprint(backend, owned)
}
