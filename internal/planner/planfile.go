package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// PlanFileVersion is the version of the saved plan format (plan -out).
// Version 2 added the digest; a version 1 plan is refused (see
// UnmarshalPlan).
const PlanFileVersion = 2

// planFile is a saved plan: the desired owned rules and the live snapshot
// they were diffed against, with its fingerprint, and a digest of it all.
// The changes are not stored; they are recomputed from the two rulesets,
// so a saved plan is always "turn live into desired". What desired may
// hold is checked as it is read (backend.Describer.CheckDesired): the
// file is data whoever can write it chooses.
type planFile struct {
	Kind          string `json:"kind"`
	FormatVersion int    `json:"format_version"`
	Prefix        string `json:"prefix"`
	// Backend is a plain string, as recorded: the file's digest covers
	// it as written, an old backend name ("nft") too.
	Backend      string            `json:"backend"`
	Fingerprint  string            `json:"fingerprint"`
	ConfigDigest string            `json:"config_digest,omitempty"`
	Desired      map[string]string `json:"desired"`
	Live         map[string]string `json:"live"`
	// ChainServices is Plan.ChainService; plans saved before it existed
	// lack it and are described from their rules.
	ChainServices map[string]string `json:"chain_services,omitempty"`
	// Destroy is Plan.Destroy; omitted when false, so a plan file from
	// before it digests as it did.
	Destroy bool `json:"destroy,omitempty"`
	// Health is Plan.Health, what reconcile's health view took out,
	// which the rules above already show; omitted when the plan read no
	// view, so such a plan digests as before.
	Health *Health `json:"health,omitempty"`
	// Digest is planDigest of everything above, so that a plan file
	// changed after it was made (the desired rules above all, which are
	// applied as they are read) is refused rather than applied.
	Digest string `json:"digest"`
}

// planDigest digests pf without its Digest: its JSON encoding, which
// encoding/json writes in field order with sorted map keys, so the same
// plan always digests the same.
func planDigest(pf planFile) (string, error) {
	pf.Digest = ""
	data, err := json.Marshal(pf)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// MarshalPlan encodes a plan for plan -out.
func MarshalPlan(p *Plan, configDigest string) ([]byte, error) {
	pf := planFile{Kind: "svcnat-plan", FormatVersion: PlanFileVersion, Prefix: p.Prefix, Backend: string(p.Backend),
		Fingerprint: p.Fingerprint, ConfigDigest: configDigest, Desired: map[string]string{}, Live: map[string]string{},
		ChainServices: p.ChainService, Destroy: p.Destroy, Health: p.Health}
	for _, f := range backend.Families {
		pf.Desired[f.Key()] = p.Desired[f].Text()
		pf.Live[f.Key()] = p.Live[f].Text()
	}
	var err error
	if pf.Digest, err = planDigest(pf); err != nil {
		return nil, err
	}
	return json.MarshalIndent(pf, "", "  ")
}

// UnmarshalPlan decodes a saved plan and recomputes its changes. It refuses
// a plan made by a version of svcnat that recorded no digest, a file that
// does not match its digest (it was changed after it was made), desired
// rules svcnat could not have written (the backend's CheckDesired, which
// the digest, recomputable by whoever edits the file, cannot replace), and
// a file whose recorded fingerprint does not match its own live snapshot.
// pureOf gives the pure part of the backend the plan was made on, which
// reads its rules (kernel.Pure).
func UnmarshalPlan(data []byte, pureOf func(backend.Name) backend.Pure) (*Plan, string, error) {
	var pf planFile
	if err := json.Unmarshal(data, &pf); err != nil {
		return nil, "", fmt.Errorf("not a saved svcnat plan: %w", err)
	}
	if pf.Kind != "svcnat-plan" {
		return nil, "", fmt.Errorf("not a saved svcnat plan")
	}
	if pf.FormatVersion == 1 {
		// Its desired rules cannot be told from ones edited since.
		return nil, "", fmt.Errorf("the plan was made by an earlier svcnat, which recorded no digest of it")
	}
	if pf.FormatVersion != PlanFileVersion {
		return nil, "", fmt.Errorf("saved plan format %d is not supported (want %d)", pf.FormatVersion, PlanFileVersion)
	}
	if digest, err := planDigest(pf); err != nil || digest != pf.Digest {
		return nil, "", fmt.Errorf("the plan file was changed after it was made: it does not match the digest recorded in it")
	}
	name := backend.Name(pf.Backend).Canonical()
	d := pureOf(name)
	if d == nil {
		return nil, "", fmt.Errorf("the plan was made on the %q backend, which this svcnat does not have", pf.Backend)
	}
	desired, live := map[backend.Family]*backend.Ruleset{}, map[backend.Family]*backend.Ruleset{}
	for _, f := range backend.Families {
		var err error
		if desired[f], err = d.Parse(f, strings.NewReader(pf.Desired[f.Key()])); err != nil {
			return nil, "", fmt.Errorf("saved plan: desired %s rules: %w", f, err)
		}
		if live[f], err = d.Parse(f, strings.NewReader(pf.Live[f.Key()])); err != nil {
			return nil, "", fmt.Errorf("saved plan: live %s rules: %w", f, err)
		}
	}
	// Checked as read, before New keeps only the owned part: a rule of
	// the file that is not svcnat's is refused, not silently dropped.
	if err := d.CheckDesired(pf.Prefix, desired); err != nil {
		return nil, "", err
	}
	if pf.Destroy && !blankDesired(desired) {
		// A destroy plan wants nothing: one that wants rules would be
		// committed with destroy's checks but apply's effect.
		return nil, "", fmt.Errorf("saved plan is corrupt: a destroy plan that wants rules")
	}
	p := New(pf.Prefix, name, desired, live)
	p.ChainService, p.Destroy, p.Health = pf.ChainServices, pf.Destroy, pf.Health
	if p.Fingerprint != pf.Fingerprint {
		return nil, "", fmt.Errorf("saved plan is corrupt: its live snapshot does not match its fingerprint")
	}
	return p, pf.ConfigDigest, nil
}

// blankDesired reports whether desired holds no chain of any table.
func blankDesired(desired map[backend.Family]*backend.Ruleset) bool {
	for _, rs := range desired {
		for _, t := range rs.Tables {
			if len(t.Chains) > 0 {
				return false
			}
		}
	}
	return true
}

// ResealPlan rewrites the digest of a plan file to match its contents, as
// anyone who edits a plan file and reads this code can: which is why the
// digest only catches edits by those who do not, and the backend's
// CheckDesired is what holds against the others.
//
// It is a tool for tests, which use it to play that editor (the engine's
// and the integration tests', in packages of their own, so it cannot live
// in an _test.go file); svcnat itself never calls it.
func ResealPlan(data []byte) ([]byte, error) {
	var pf planFile
	if err := json.Unmarshal(data, &pf); err != nil {
		return nil, fmt.Errorf("not a saved svcnat plan: %w", err)
	}
	var err error
	if pf.Digest, err = planDigest(pf); err != nil {
		return nil, err
	}
	return json.MarshalIndent(pf, "", "  ")
}
