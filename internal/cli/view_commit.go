package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// commitView follows a command that changes rules (apply, rollback,
// destroy) for a person, or for a program with --json: it shows the plan,
// asks, reports progress and the outcome, and turns the engine's typed
// errors into svcnat's messages and hints.
type commitView struct {
	c           *ucli.Context
	g           Globals
	autoApprove bool
	// the progress of a staged apply, see step
	started time.Time
	staged  bool
	// lost is the first error writing the output (see outputErr)
	lost error
	// doc is the one document of a run with --json
	doc *resultDoc
}

func newCommitView(c *ucli.Context, g Globals) *commitView {
	v := &commitView{c: c, g: g}
	if g.JSON {
		v.doc = &resultDoc{w: c.App.Writer}
	}
	return v
}

// hooks connects the view to an engine run; with autoApprove nobody is
// asked, but a plan whose output was lost is still not committed.
func (v *commitView) hooks(autoApprove bool) engine.Hooks {
	v.autoApprove = autoApprove
	return engine.Hooks{Planned: v.planned, Step: v.step, Approve: v.approve}
}

func (v *commitView) planned(p engine.Planned) {
	w := v.c.App.Writer
	if v.doc != nil {
		write := func() error { return v.doc.plan(newJSONPlan(p.Plan, p.Refusal), p.Rollback) }
		if p.Removal {
			write = func() error { return v.doc.removal(newJSONPlan(p.Plan, p.Refusal)) }
		}
		if err := write(); err != nil && v.lost == nil {
			v.lost = fmt.Errorf("writing the plan: %w", err)
		}
		return
	}
	if p.Removal {
		// A migration's second plan, after the first's total line.
		fmt.Fprintln(w)
	}
	if r := p.Rollback; r != nil && !v.g.JSON {
		fmt.Fprintf(w, "Rolling back from generation %d to generation %d (applied %s).\n\n",
			r.From, r.To.Generation, r.To.AppliedAt.Format("2006-01-02 15:04:05 MST"))
	}
	view := newOpPlanView(w, p.Op, v.g.JSON, v.g.Color)
	if h, ok := view.(*planHuman); ok && p.Rollback != nil {
		h.nothing = fmt.Sprintf("The live rules are generation %d's.", p.Rollback.To.Generation)
	}
	if h, ok := view.(*planHuman); ok && p.Removal {
		h.removal(p.Plan.Backend)
	}
	if err := view.PlanRefused(p.Plan, p.Refusal); err != nil && v.lost == nil {
		v.lost = err
	}
}

// outputErr is the error that lost some of this run's output, if any.
func (v *commitView) outputErr() error {
	if v.lost != nil {
		return v.lost
	}
	return outputErr(v.c.App.Writer)
}

func (v *commitView) approve(ctx context.Context, p *planner.Plan) (bool, error) {
	// Nobody saw a plan that was not written (a full disk, a closed
	// pipe): it is not committed, asked or not.
	if err := v.outputErr(); err != nil {
		return false, fmt.Errorf("%s: %w; nothing was changed", v.c.Command.Name, err)
	}
	if v.autoApprove {
		return true, nil
	}
	if v.g.JSON {
		return false, withHint(fmt.Errorf("%s --json cannot ask for confirmation; nothing was changed", v.c.Command.Name), "pass -auto-approve")
	}
	return confirm(ctx, envOf(v.c), v.c.App.Reader, v.c.App.Writer, engine.Op(v.c.Command.Name))
}

// step shows, on a terminal, how a staged apply (thousands of chains)
// goes: the chains created so far, then the commit and the verification,
// with the time since the first step. Nothing else is shown, nor anything
// with --json or without a terminal.
func (v *commitView) step(s engine.Step) {
	if !v.g.Progress {
		return
	}
	if v.started.IsZero() {
		v.started = time.Now()
	}
	if s.Kind == engine.StepStage {
		v.staged = true
	}
	if !v.staged {
		return
	}
	w, took := v.c.App.ErrWriter, time.Since(v.started).Round(100*time.Millisecond)
	switch s.Kind {
	case engine.StepStage:
		fmt.Fprintf(w, "\rsvcnat: creating %s chains: %d of %d (%s)", s.Family, s.Done+s.Chains, s.Total, took)
		if s.N == s.Of {
			fmt.Fprintln(w)
		}
	case engine.StepCommit:
		fmt.Fprintf(w, "svcnat: committing %s, %s (%s)\n", s.Family, plural(s.Lines, "line"), took)
	case engine.StepVerify:
		fmt.Fprintf(w, "svcnat: verifying (%s)\n", took)
	}
}

// done reports the outcome of a run.
func (v *commitView) done(res *engine.Result, err error) error {
	if v.doc != nil {
		return v.doneJSON(res, err)
	}
	if err != nil {
		return v.failed(err)
	}
	w, st := v.c.App.Writer, newStyle(v.g.Color)
	if res.Conntrack.Err != nil {
		fmt.Fprintf(v.c.App.ErrWriter, "svcnat: warning: the rules are applied, but %v\n", res.Conntrack.Err)
	} else if res.Conntrack.Flows > 0 && !v.g.JSON {
		fmt.Fprintf(w, "Deleted the UDP conntrack entries of %s to removed endpoints.\n", plural(res.Conntrack.Flows, "flow"))
	}
	if err := v.outputErr(); err != nil {
		return lostOutput(res, err)
	}
	if !res.Applied && res.Op == engine.OpApply && !v.g.JSON {
		// A job that relies on its probes must not read silence as a pass.
		var skipped []string
		switch n := len(v.c.StringSlice("probe")); n {
		case 0:
		case 1:
			skipped = append(skipped, "the probe was not run")
		default:
			skipped = append(skipped, fmt.Sprintf("the %d probes were not run", n))
		}
		if v.c.Duration("confirm-timeout") > 0 {
			skipped = append(skipped, "nothing awaits confirmation")
		}
		if len(skipped) > 0 {
			fmt.Fprintf(w, "Nothing was committed: %s.\n", strings.Join(skipped, ", and "))
		}
	}
	if res.Generation == 0 || v.g.JSON {
		if !v.g.JSON {
			migrated(w, res.MigratedFrom)
		}
		return nil
	}
	said := "The rules already match the plan (an earlier apply stopped before recording them):"
	if res.Op != engine.OpApply {
		// Only an apply's record can lag its own commit; a rollback or
		// destroy finding its rules in place records them as they are.
		said = fmt.Sprintf("The rules already match the plan (this %s changes none of them):", res.Op)
	}
	if res.Repaired && len(res.Adopted) > 0 {
		said = fmt.Sprintf("Adopted %s (--adopt); the rules already match the plan:", plural(len(res.Adopted), "chain"))
	}
	if !res.Repaired {
		s, op := res.Plan.Summary(), string(res.Op)
		said = fmt.Sprintf("%s %s added, %d changed, %d removed (%s written) in %s;", st.bold(strings.ToUpper(op[:1])+op[1:]+" complete!"),
			plural(s.Add, objectWord(res.Plan.Backend)), s.Change, s.Remove, plural(res.Lines, "line"), res.Took.Round(time.Millisecond))
		if len(res.Adopted) > 0 {
			said += fmt.Sprintf(" adopted %s (--adopt);", plural(len(res.Adopted), "chain"))
		}
	}
	fmt.Fprintf(w, "\n%s generation %d recorded in %s.\n", said, res.Generation, res.StateDir)
	migrated(w, res.MigratedFrom)
	if err := v.outputErr(); err != nil {
		return lostOutput(res, err)
	}
	return nil
}

// doneJSON closes the run's document with its result (README "Results
// as JSON"); warnings and errors go to stderr as without --json.
func (v *commitView) doneJSON(res *engine.Result, err error) error {
	if res != nil && res.Conntrack.Err != nil {
		fmt.Fprintf(v.c.App.ErrWriter, "svcnat: warning: the rules are applied, but %v\n", res.Conntrack.Err)
	}
	werr := v.doc.result(newJSONResult(engine.Op(v.c.Command.Name), v.g.StateDir, v.doc.rollback, res, err))
	if err != nil {
		return v.failed(err)
	}
	if werr == nil {
		werr = v.outputErr()
	}
	if werr != nil {
		return lostOutput(res, werr)
	}
	return nil
}

// lostOutput says what a run that went through did when its output was
// lost: the exit status must not read as a failed apply, nor as a silent
// success.
func lostOutput(res *engine.Result, err error) error {
	did := "nothing was changed"
	switch {
	case res.Pending != nil:
		did = fmt.Sprintf("generation %d is recorded in %s and awaits confirmation: svcnat confirm %s keeps it, else it is reverted at %s",
			res.Generation, res.StateDir, res.Pending.ID, state.When(res.Pending.Deadline))
	case res.Generation > 0:
		did = fmt.Sprintf("generation %d is recorded in %s", res.Generation, res.StateDir)
	}
	return fmt.Errorf("%s went through (%s), but its output was lost: %w", res.Op, did, err)
}

// failed turns the engine's errors into messages with a hint where there
// is something to do.
func (v *commitView) failed(err error) error { return hinted(err) }

// engineErrors is what svcnat says of the engine's errors that callers
// branch on, the first that matches: the reason plan --json gives when
// apply would refuse a plan with it ("" for the one that is no refusal on
// this host; "other" for those ApplyRefusal never gives), and the hint,
// where there is something to do.
var engineErrors = []struct {
	reason string
	hint   func(error) (hint string, matched bool)
}{
	{"other_namespace", hintAs(func(e *engine.NamespaceError) string { return e.Hint() })},
	{"pending_confirmation", hintAs(func(e *engine.PendingError) string { return pendingHint(e.Pending) })},
	{"prefix_changed", hintAs(func(e *engine.PrefixChangedError) string {
		return fmt.Sprintf("run svcnat destroy to remove the %s-* chains first (it uses the prefix recorded in %s), then apply", e.Recorded, e.StateDir)
	})},
	{"prefix_changed", hintAs(func(*engine.PlanPrefixError) string { return "make the plan again with the configuration of this host" })},
	{"kube_proxy", hintAs(func(e *engine.KubeProxyError) string { return e.Hint() })},
	{"other_state_dir", hintAs(func(e *engine.OwnerError) string {
		return fmt.Sprintf("use --state-dir %s, or run svcnat destroy --state-dir %s first; --adopt takes the chains over", e.Owner, e.Owner)
	})},
	{"unrecorded_chains", hintAs(func(e *engine.UnrecordedError) string {
		return "if another program wrote them, choose another chain_prefix; if svcnat did (with a state directory that is lost), run again with --adopt to take them over"
	})},
	{"blocked", hintAs(func(*engine.BlockedError) string {
		return "remove or change those rules first; svcnat never edits rules it does not own"
	})},
	// A state directory another user could change (its own hint).
	{"untrusted_state_dir", hintAs(func(e *state.UntrustedError) string { return e.Hint() })},
	// Refusals of a saved plan (apply PLANFILE).
	{"plan_unusable", hintAs(func(e *planUnusableError) string { return e.hint })},
	{"plan_unusable", hintAs(func(*engine.PlanUnusableError) string {
		return "make the plan again with svcnat plan -out FILE and review it"
	})},
	{"other_backend", hintAs(func(*engine.PlanBackendError) string { return "make the plan again on this host" })},
	{"already_applied", hintAs(func(e *alreadyAppliedError) string { return e.hint })},
	{"stale", hintAs(func(e *stalePlanError) string { return e.hint })},
	{"stale", hintAs(func(*engine.StaleError) string { return "run svcnat plan again" })},
	// Refusals of a rollback: nothing before the current generation, or
	// a generation the state directory does not keep.
	{"nothing_to_roll_back", hintIs(engine.ErrNoPrevious, "rollback needs two applied generations; see svcnat show")},
	{"nothing_to_roll_back", func(err error) (string, bool) {
		var e *engine.GenerationGoneError
		if !errors.As(err, &e) || e.Generation != e.Current {
			return "", false
		}
		return e.Hint(), true
	}},
	{"generation_gone", hintAs(func(e *engine.GenerationGoneError) string { return e.Hint() })},
	{"other", hintIs(engine.ErrLocked, "another svcnat is applying; wait for it, or raise --lock-timeout")},
	// A plan against a dump is about another host: apply refuses it
	// everywhere, and plan --json says so with applyable false.
	{"", hintIs(backend.ErrReadOnly, "drop --iptables-save to work on the live rules")},
	{"other", hintIs(engine.ErrCancelled, "")},
}

// hintAs matches an error of type E, with the hint hint makes of it.
func hintAs[E error](hint func(E) string) func(error) (string, bool) {
	return func(err error) (string, bool) {
		var e E
		if !errors.As(err, &e) {
			return "", false
		}
		return hint(e), true
	}
}

// hintIs matches an error that is target, with hint.
func hintIs(target error, hint string) func(error) (string, bool) {
	return func(err error) (string, bool) { return hint, errors.Is(err, target) }
}

// hinted gives the engine's errors their hint (engineErrors); plan gives
// the same hints for what apply would refuse.
func hinted(err error) error {
	for _, e := range engineErrors {
		if hint, ok := e.hint(err); ok {
			if hint == "" {
				return err
			}
			return withHint(err, hint)
		}
	}
	return err
}

// refusalReason names, for plan --json, why apply would refuse a plan
// (engine.ApplyRefusal's error; engineErrors); "" when it would not on
// this host: no refusal, or a plan against a dump.
func refusalReason(refusal error) string {
	if refusal == nil {
		return ""
	}
	for _, e := range engineErrors {
		if _, ok := e.hint(refusal); ok {
			return e.reason
		}
	}
	return "other"
}

// migrated says, after an apply's completion line, what a migration did
// to the backend it moved svcnat's rules from: their removal, and the
// tables given back. Nothing for any other run.
func migrated(w io.Writer, m *engine.Migration) {
	if m == nil || !m.Removed {
		return
	}
	s := m.Plan.Summary()
	fmt.Fprintf(w, "Removed svcnat's %s from the %s backend (%s, %s written in %s)",
		objectWord(m.From)+"s", m.From, plural(s.Remove, objectWord(m.From)), plural(m.Lines, "line"), m.Took.Round(time.Millisecond))
	if len(m.TablesRemoved) > 0 {
		fmt.Fprintf(w, " and gave back the tables its applies created there (%s)", strings.Join(m.TablesRemoved, ", "))
	}
	fmt.Fprintln(w, "; the state directory records the new set only.")
}
