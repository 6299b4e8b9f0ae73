package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/state"
)

// ResultJSONVersion is the version of the document apply, rollback,
// destroy, revert and confirm print with --json; see README.md ("Results
// as JSON"). The plan inside it has its own (PlanJSONVersion).
const ResultJSONVersion = "1"

// The outcomes of a run, the result's "outcome".
const (
	outcomeApplied   = "applied"   // the rules changed (and were recorded, unless generation is null)
	outcomeUnchanged = "unchanged" // the live rules matched: nothing committed, nothing recorded
	outcomeRecorded  = "recorded"  // the live rules matched, and a generation was recorded for them
	outcomeConfirmed = "confirmed" // confirm: the pending apply stays
	outcomeRefused   = "refused"   // refused before any change; error.reason says why
	outcomeFailed    = "failed"    // it did not go through; error says why
)

// jsonResult is what a command that changes rules did (README "Results
// as JSON").
type jsonResult struct {
	Operation string `json:"operation"`
	Outcome   string `json:"outcome"`
	// Generation is the generation recorded, null when none was.
	Generation      *int64          `json:"generation"`
	StateDir        string          `json:"state_dir"`
	Summary         jsonSummary     `json:"summary"`
	LinesWritten    int             `json:"lines_written"`
	DurationSeconds float64         `json:"duration_seconds"`
	ConntrackFlows  int             `json:"conntrack_flows_deleted"`
	Warnings        []string        `json:"warnings"`
	Probes          jsonProbes      `json:"probes"`
	Pending         *jsonPending    `json:"pending"`
	Confirmed       *jsonConfirmed  `json:"confirmed"`
	Rollback        *jsonRollback   `json:"rollback"`
	Reverted        *jsonReverted   `json:"reverted"`
	TablesRemoved   []string        `json:"tables_removed"`
	Error           *jsonRunFailure `json:"error"`
	// MigratedFrom is, only for an apply that moved svcnat's rules from
	// another backend, what it did there.
	MigratedFrom *jsonMigratedFrom `json:"migrated_from,omitempty"`
}

// jsonMigratedFrom is the removal of svcnat's set from the backend an
// apply moved the rules from (engine.Migration).
type jsonMigratedFrom struct {
	Backend string `json:"backend"`
	// Removed: the set is gone (false when the run stopped before, or
	// the removal failed: error says so).
	Removed         bool        `json:"removed"`
	Summary         jsonSummary `json:"summary"`
	LinesWritten    int         `json:"lines_written"`
	DurationSeconds float64     `json:"duration_seconds"`
	TablesRemoved   []string    `json:"tables_removed"`
}

func newJSONMigratedFrom(m *engine.Migration) *jsonMigratedFrom {
	out := &jsonMigratedFrom{Backend: string(m.From), Removed: m.Removed, Summary: jsonSummary(m.Plan.Summary()),
		LinesWritten: m.Lines, DurationSeconds: m.Took.Seconds(), TablesRemoved: []string{}}
	if m.TablesRemoved != nil {
		out.TablesRemoved = m.TablesRemoved
	}
	return out
}

type jsonProbes struct {
	Passed    int  `json:"passed"`
	Confirmed bool `json:"confirmed"` // they confirmed an apply made with --confirm-timeout
}

// jsonPending is an apply that awaits confirmation.
type jsonPending struct {
	ID             string    `json:"id"`
	Generation     int64     `json:"generation"`
	Deadline       time.Time `json:"deadline"`
	TimeoutSeconds float64   `json:"timeout_seconds"`
	Watcher        string    `json:"watcher"`
}

type jsonConfirmed struct {
	ID         string `json:"id"`
	Generation int64  `json:"generation"`
}

type jsonRollback struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

type jsonReverted struct {
	ID         string `json:"id"`
	Generation int64  `json:"generation"`
	Reason     string `json:"reason"`
}

// jsonRunFailure is why a run did not go through: reason as plan --json's
// refusal (README), "other" for every other error.
type jsonRunFailure struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// newJSONRunFailure is err as a document's error: its hint is the one
// stderr prints (hinted's, or the error's own Hint, such as
// state.UntrustedError's).
func newJSONRunFailure(reason string, err error) *jsonRunFailure {
	out := &jsonRunFailure{Reason: reason, Message: err.Error()}
	if he := hinter(nil); errors.As(hinted(err), &he) {
		out.Hint = he.Hint()
	}
	return out
}

func newJSONPending(pd *state.Pending) *jsonPending {
	return &jsonPending{ID: pd.ID, Generation: pd.Generation, Deadline: pd.Deadline.UTC(),
		TimeoutSeconds: pd.Timeout.Seconds(), Watcher: pd.Watcher}
}

// newJSONResult is the result of op: res what it did (nil when it
// failed before doing anything), err its error.
func newJSONResult(op engine.Op, stateDir string, rollback *engine.RollbackFromTo, res *engine.Result, err error) jsonResult {
	out := jsonResult{Operation: string(op), Outcome: outcomeUnchanged, StateDir: stateDir, Warnings: []string{}, TablesRemoved: []string{}}
	if rollback != nil {
		out.Rollback = &jsonRollback{From: rollback.From, To: rollback.To.Generation}
	}
	if res != nil {
		out.StateDir = res.StateDir
		if res.Generation > 0 {
			g := res.Generation
			out.Generation = &g
		}
		switch {
		case res.Applied:
			out.Outcome = outcomeApplied
			out.Summary = jsonSummary(res.Plan.Summary())
		case res.Generation > 0:
			out.Outcome = outcomeRecorded
		}
		out.LinesWritten, out.DurationSeconds = res.Lines, res.Took.Seconds()
		out.ConntrackFlows = res.Conntrack.Flows
		if res.Conntrack.Err != nil {
			out.Warnings = append(out.Warnings, fmt.Sprintf("the rules are applied, but %v", res.Conntrack.Err))
		}
		out.Probes = jsonProbes{Passed: res.Probed, Confirmed: res.ProbeConfirmed}
		if res.Pending != nil {
			out.Pending = newJSONPending(res.Pending)
		}
		if r := res.Reverted; r != nil {
			out.Reverted = &jsonReverted{ID: r.ID, Generation: r.Generation, Reason: res.Reason}
		}
		if res.TablesRemoved != nil {
			out.TablesRemoved = res.TablesRemoved
		}
		if res.MigratedFrom != nil {
			out.MigratedFrom = newJSONMigratedFrom(res.MigratedFrom)
		}
	}
	if err != nil {
		out.Outcome, out.Generation = outcomeFailed, nil
		if me := (*engine.MigrationError)(nil); errors.As(err, &me) {
			// The new set is applied and recorded; only the old one's
			// removal failed.
			g := me.Generation
			out.Generation = &g
		}
		reason := refusalReason(err)
		if reason == "" {
			reason = "other"
		}
		if reason != "other" {
			out.Outcome = outcomeRefused
		}
		out.Error = newJSONRunFailure(reason, err)
	}
	return out
}

// resultDoc writes, for --json, the one document of a run that changes
// rules: {"format_version", "plan", "result"}. The plan is written as soon
// as it is made, so that a plan that cannot be written (a closed pipe) is
// not committed, as without --json; the result closes the document.
type resultDoc struct {
	w        io.Writer
	opened   bool // the document's start and plan are written
	closed   bool
	rollback *engine.RollbackFromTo
}

// plan opens the document with the plan (an encoded jsonPlan).
func (d *resultDoc) plan(p jsonPlan, rollback *engine.RollbackFromTo) error {
	d.rollback = rollback
	b, err := json.MarshalIndent(p, "  ", "  ")
	if err != nil {
		return err
	}
	d.opened = true
	_, err = fmt.Fprintf(d.w, "{\n  \"format_version\": %q,\n  \"plan\": %s", ResultJSONVersion, b)
	return err
}

// removal adds, after the plan, the plan of a migration's removal from
// the backend it moves svcnat's rules from (engine.Planned.Removal), as
// "migrated_from_plan".
func (d *resultDoc) removal(p jsonPlan) error {
	b, err := json.MarshalIndent(p, "  ", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(d.w, ",\n  \"migrated_from_plan\": %s", b)
	return err
}

// result closes the document with r; a document not opened gets a null
// plan.
func (d *resultDoc) result(r jsonResult) error {
	if d.closed {
		return nil
	}
	d.closed = true
	if !d.opened {
		if _, err := fmt.Fprintf(d.w, "{\n  \"format_version\": %q,\n  \"plan\": null", ResultJSONVersion); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(r, "  ", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(d.w, ",\n  \"result\": %s\n}\n", b)
	return err
}
