package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/engine"
	"github.com/svcnat/svcnat/iptables"
	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/state"
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
}

func newCommitView(c *ucli.Context, g Globals) *commitView { return &commitView{c: c, g: g} }

// hooks connects the view to an engine run; with autoApprove nobody is
// asked, but a plan whose output was lost is still not committed.
func (v *commitView) hooks(autoApprove bool) engine.Hooks {
	v.autoApprove = autoApprove
	return engine.Hooks{Planned: v.planned, Step: v.step, Approve: v.approve}
}

func (v *commitView) planned(p engine.Planned) {
	w := v.c.App.Writer
	if r := p.Rollback; r != nil && !v.g.JSON {
		fmt.Fprintf(w, "Rolling back from generation %d to generation %d (applied %s).\n\n",
			r.From, r.To.Generation, r.To.AppliedAt.Format("2006-01-02 15:04:05 MST"))
	}
	if err := newPlanView(w, v.g.JSON, v.g.Color).PlanRefused(p.Plan, p.Refusal); err != nil && v.lost == nil {
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
	if res.Generation == 0 || v.g.JSON {
		return nil
	}
	said := "The rules already match the plan (an earlier apply stopped before recording them):"
	if !res.Repaired {
		s, op := res.Plan.Summary(), string(res.Op)
		said = fmt.Sprintf("%s %s added, %d changed, %d removed (%s written) in %s;", st.bold(strings.ToUpper(op[:1])+op[1:]+" complete!"),
			plural(s.Add, "chain"), s.Change, s.Remove, plural(res.Lines, "line"), res.Took.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "\n%s generation %d recorded in %s.\n", said, res.Generation, res.StateDir)
	if err := v.outputErr(); err != nil {
		return lostOutput(res, err)
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

// hinted gives the engine's errors a hint where there is something to do;
// plan gives the same hints for what apply would refuse.
func hinted(err error) error {
	var (
		prefix  *engine.PrefixChangedError
		planPfx *engine.PlanPrefixError
		blocked *engine.BlockedError
		pending *engine.PendingError
	)
	switch {
	case errors.As(err, &prefix):
		return withHint(err, fmt.Sprintf("run svcnat destroy to remove the %s-* chains first (it uses the prefix recorded in %s), then apply",
			prefix.Recorded, prefix.StateDir))
	case errors.As(err, &planPfx):
		return withHint(err, "make the plan again with the configuration of this host")
	case errors.As(err, &pending):
		return withHint(err, pendingHint(pending.Pending))
	case errors.As(err, &blocked):
		return withHint(err, "remove or change those rules first; svcnat never edits rules it does not own")
	case errors.Is(err, engine.ErrLocked):
		return withHint(err, "another svcnat is applying; wait for it, or raise --lock-timeout")
	case errors.Is(err, engine.ErrNoPrevious):
		return withHint(err, "rollback needs two applied generations; see svcnat show")
	case errors.Is(err, iptables.ErrReadOnly):
		return withHint(err, "drop --iptables-save to work on the live rules")
	case errors.Is(err, engine.ErrCancelled):
		return exitWith(ExitError, err)
	}
	return err
}

// refusalReason names, for plan --json, why apply would refuse a plan
// (engine.ApplyRefusal's error); "" when it would not on this host: no
// refusal, or a plan against a dump, which is about another host.
func refusalReason(refusal error) string {
	var (
		prefix  *engine.PrefixChangedError
		blocked *engine.BlockedError
		pending *engine.PendingError
	)
	switch {
	case refusal == nil, errors.Is(refusal, iptables.ErrReadOnly):
		return ""
	case errors.As(refusal, &pending):
		return "pending_confirmation"
	case errors.As(refusal, &prefix):
		return "prefix_changed"
	case errors.As(refusal, &blocked):
		return "blocked"
	}
	return "other"
}
