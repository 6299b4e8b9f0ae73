package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
)

// ShowJSONVersion is the version of `show --json` output; see README.md.
const ShowJSONVersion = "1"

// jsonStatus is the documented machine-readable show (README "show --json").
type jsonStatus struct {
	FormatVersion string          `json:"format_version"`
	Prefix        string          `json:"prefix"`
	Backend       backend.Name    `json:"backend"`
	StateDir      string          `json:"state_dir"`
	Pending       *showPending    `json:"pending"`
	Owned         jsonOwned       `json:"owned"`
	Interrupted   []jsonLeft      `json:"interrupted"`
	Generation    *jsonGeneration `json:"generation"`
	Drift         *jsonDrift      `json:"drift"`
	Undone        *jsonUndone     `json:"undone"`
	Health        *jsonShowHealth `json:"health"`
}

// jsonUndone is the last apply svcnat undid (state.Undone): a pending
// apply reverted, or an apply rolled back because a probe failed, as long
// as nothing but reverts was recorded since; svcnat reconcile does not
// apply its configuration again. Generation is 0 when the apply recorded
// none (its probes failed, or it stopped before its record).
type jsonUndone struct {
	Generation   int64     `json:"generation"`
	ConfigDigest string    `json:"config_digest"`
	Reason       string    `json:"reason"`
	At           time.Time `json:"at"`
}

// showPending is an apply awaiting confirmation (or still applying).
type showPending struct {
	ID         string     `json:"id"`
	Status     string     `json:"status"`
	Generation int64      `json:"generation"`
	Previous   int64      `json:"previous"`
	Deadline   *time.Time `json:"deadline"`
	Watcher    string     `json:"watcher"`
	Watched    bool       `json:"watched"`
}

type jsonOwned struct {
	Chains   int                `json:"chains"`
	Rules    int                `json:"rules"`
	Services []jsonServiceRules `json:"services"`
	Shared   []jsonRule         `json:"shared"`
}

type jsonServiceRules struct {
	Name  string     `json:"name"`
	Rules []jsonRule `json:"rules"`
}

type jsonRule struct {
	Family string `json:"family"`
	Table  string `json:"table"`
	Rule   string `json:"rule"`
}

// jsonGeneration is the generation drift is measured from.
type jsonGeneration struct {
	Generation   int64     `json:"generation"`
	AppliedAt    time.Time `json:"applied_at"`
	ConfigDigest string    `json:"config_digest"`
	RevertOf     int64     `json:"revert_of"`
}

// jsonDrift is what changed outside svcnat since the generation: a plan
// from its rules to the live ones.
type jsonDrift struct {
	Changed bool `json:"changed"`
	// HealthChanges counts the objects svcnat reconcile's health checks
	// changed since the generation (not drift, and not in Changes).
	HealthChanges int               `json:"health_changes"`
	Summary       jsonDriftSummary  `json:"summary"`
	Changes       []jsonDriftChange `json:"changes"`
}

type jsonDriftSummary struct {
	Add          int `json:"add"`
	Change       int `json:"change"`
	Remove       int `json:"remove"`
	RulesAdded   int `json:"rules_added"`
	RulesRemoved int `json:"rules_removed"`
}

type jsonDriftChange struct {
	Family  string        `json:"family"`
	Table   string        `json:"table"`
	Chain   string        `json:"chain"`
	Action  string        `json:"action"`
	Builtin bool          `json:"builtin"`
	Before  jsonRuleLines `json:"before"`
	After   jsonRuleLines `json:"after"`
}

// writeStatusJSON writes show --json: one document.
func writeStatusJSON(w io.Writer, s *engine.Status) error {
	out := jsonStatus{FormatVersion: ShowJSONVersion, Prefix: s.Prefix, Backend: s.Backend, StateDir: s.StateDir,
		Owned:       jsonOwned{Chains: s.Owned.Chains, Rules: s.Owned.Rules, Services: []jsonServiceRules{}, Shared: jsonRules(s.Owned.Shared)},
		Interrupted: jsonInterrupted(s.Interrupted), Health: newJSONShowHealth(s.Health)}
	if pd := s.Pending; pd != nil {
		out.Pending = &showPending{ID: pd.ID, Status: pd.Status, Generation: pd.Generation, Previous: pd.Previous,
			Watcher: pd.Watcher, Watched: pd.Watched}
		if !pd.Deadline.IsZero() {
			out.Pending.Deadline = &pd.Deadline
		}
	}
	if u := s.State.Undone; u != nil {
		out.Undone = &jsonUndone{Generation: u.Generation, ConfigDigest: u.ConfigDigest, Reason: u.Reason, At: u.At}
	}
	for _, n := range s.Owned.Names() {
		out.Owned.Services = append(out.Owned.Services, jsonServiceRules{Name: n, Rules: jsonRules(s.Owned.Services[n])})
	}
	if s.Drift != nil {
		g := &jsonGeneration{Generation: s.State.Generation, AppliedAt: s.State.AppliedAt, ConfigDigest: s.State.ConfigDigest}
		g.RevertOf = revertOf(s.State)
		out.Generation = g
		sum := s.Drift.Summary()
		out.Drift = &jsonDrift{Changed: !s.Drift.Empty(), Changes: []jsonDriftChange{}, HealthChanges: healthChanges(s),
			Summary: jsonDriftSummary{Add: sum.Add, Change: sum.Change, Remove: sum.Remove, RulesAdded: sum.RulesAdded, RulesRemoved: sum.RulesRemoved}}
		for _, c := range s.Drift.Changes {
			out.Drift.Changes = append(out.Drift.Changes, jsonDriftChange{Family: c.Family.Key(), Table: c.Table, Chain: c.Chain,
				Action: c.Action.String(), Builtin: c.Builtin, Before: c.Before, After: c.After})
		}
	}
	return encodeJSON(w, out, "writing the status")
}

func jsonRules(ls []backend.Located) []jsonRule {
	out := []jsonRule{}
	for _, l := range ls {
		out = append(out, jsonRule{Family: l.Family.Key(), Table: l.Table, Rule: l.Rule.String()})
	}
	return out
}

// jsonSavedPlan is what show --json PLANFILE adds to plan --json's
// document: which file, whether it is a destroy plan, and the
// configuration it was made from.
type jsonSavedPlan struct {
	File         string `json:"file"`
	Destroy      bool   `json:"destroy"`
	ConfigDigest string `json:"config_digest"`
}

// writeSavedPlanJSON writes show --json PLANFILE: plan --json's document
// of the saved plan, with jsonSavedPlan's members after its own.
func writeSavedPlanJSON(w io.Writer, file string, p *planner.Plan, configDigest string) error {
	return encodeJSON(w, struct {
		jsonPlan
		jsonSavedPlan
	}{newJSONPlan(p, nil), jsonSavedPlan{File: file, Destroy: p.Destroy, ConfigDigest: configDigest}}, "writing the plan")
}

// jsonShowError is show --json's document of an error after its arguments
// were parsed (README "show --json"): its format_version and the error,
// as a result's (reason as plan --json's refusal, "other" for every other
// error).
type jsonShowError struct {
	FormatVersion string          `json:"format_version"`
	Error         *jsonRunFailure `json:"error"`
}

// showJSONErrors makes show, with --json, answer an error with a
// jsonShowError document, so that a program finds one document on stdout
// whatever happens, as the results of apply and plan's refusals do; its
// message is the one stderr prints (readOnlyMessage). An error after show
// wrote its document (a closed pipe) gets none: a second one would not
// be one document, nor would it be read.
func showJSONErrors(action ucli.ActionFunc) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		w := &countingWriter{w: c.App.Writer}
		c.App.Writer = w
		defer func() { c.App.Writer = w.w }()
		err := action(c)
		if err == nil || w.n > 0 || !setIn(c, "json").Bool("json") {
			return err
		}
		if !traitsOf(c.Command).changes {
			err = readOnlyErr(err)
		}
		reason := refusalReason(err)
		if reason == "" {
			reason = "other"
		}
		if werr := encodeJSON(w.w, jsonShowError{FormatVersion: ShowJSONVersion, Error: newJSONRunFailure(reason, err)}, "writing the error"); werr != nil {
			return fmt.Errorf("%w (and %w)", err, werr)
		}
		return err
	}
}

// countingWriter counts what is written through it.
type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += n
	return n, err
}

// encodeJSON writes v as one indented JSON document; what names the
// write in its error.
func encodeJSON(w io.Writer, v any, what string) error {
	b := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(b)
	enc.SetIndent("", "  ")
	err := enc.Encode(v)
	if err == nil {
		err = b.Flush()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// healthChanges counts the objects reconcile's health checks changed since
// the generation (engine.Status.HealthDrift).
func healthChanges(s *engine.Status) int {
	if s.HealthDrift == nil {
		return 0
	}
	n := s.HealthDrift.Summary()
	return n.Add + n.Change + n.Remove
}
