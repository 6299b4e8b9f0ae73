package planner

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/svcnat/svcnat/rules"
)

// PlanFileVersion is the version of the saved plan format (plan -out).
const PlanFileVersion = 1

// planFile is a saved plan: the desired owned rules and the live snapshot
// they were diffed against, with its fingerprint. The changes are not
// stored; they are recomputed from the two rulesets, which makes a saved
// plan impossible to tamper into something other than "turn live into
// desired".
type planFile struct {
	Kind          string            `json:"kind"`
	FormatVersion int               `json:"format_version"`
	Prefix        string            `json:"prefix"`
	Backend       string            `json:"backend"`
	Fingerprint   string            `json:"fingerprint"`
	ConfigDigest  string            `json:"config_digest,omitempty"`
	Desired       map[string]string `json:"desired"`
	Live          map[string]string `json:"live"`
	// ChainServices is Plan.ChainService; plans saved before it existed
	// lack it and are described from their rules.
	ChainServices map[string]string `json:"chain_services,omitempty"`
}

// MarshalPlan encodes a plan for plan -out.
func MarshalPlan(p *Plan, configDigest string) ([]byte, error) {
	pf := planFile{Kind: "svcnat-plan", FormatVersion: PlanFileVersion, Prefix: p.Prefix, Backend: p.Backend,
		Fingerprint: p.Fingerprint(), ConfigDigest: configDigest, Desired: map[string]string{}, Live: map[string]string{},
		ChainServices: p.ChainService}
	for _, f := range rules.Families {
		pf.Desired[f.Key()] = p.Desired[f].Text()
		pf.Live[f.Key()] = p.Live[f].Text()
	}
	return json.MarshalIndent(pf, "", "  ")
}

// UnmarshalPlan decodes a saved plan and recomputes its changes. It refuses
// a file whose recorded fingerprint does not match its own live snapshot.
func UnmarshalPlan(data []byte) (*Plan, string, error) {
	var pf planFile
	if err := json.Unmarshal(data, &pf); err != nil {
		return nil, "", fmt.Errorf("not a saved svcnat plan: %w", err)
	}
	if pf.Kind != "svcnat-plan" {
		return nil, "", fmt.Errorf("not a saved svcnat plan")
	}
	if pf.FormatVersion != PlanFileVersion {
		return nil, "", fmt.Errorf("saved plan format %d is not supported (want %d)", pf.FormatVersion, PlanFileVersion)
	}
	desired, live := map[rules.Family]*rules.Ruleset{}, map[rules.Family]*rules.Ruleset{}
	for _, f := range rules.Families {
		var err error
		if desired[f], err = rules.ParseSave(f, strings.NewReader(pf.Desired[f.Key()])); err != nil {
			return nil, "", fmt.Errorf("saved plan: desired %s rules: %w", f, err)
		}
		if live[f], err = rules.ParseSave(f, strings.NewReader(pf.Live[f.Key()])); err != nil {
			return nil, "", fmt.Errorf("saved plan: live %s rules: %w", f, err)
		}
	}
	p := New(pf.Prefix, pf.Backend, desired, live)
	p.ChainService = pf.ChainServices
	if p.Fingerprint() != pf.Fingerprint {
		return nil, "", fmt.Errorf("saved plan is corrupt: its live snapshot does not match its fingerprint")
	}
	return p, pf.ConfigDigest, nil
}
