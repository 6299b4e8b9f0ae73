package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/planner"
)

func commitFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "auto-approve", Usage: "do not ask for confirmation"},
		adoptFlag(),
		lockTimeoutFlag(),
		metricsFileFlag(),
	}
}

// adoptFlag lets a command take over chains of its prefix that its state
// directory did not record, or that another state directory wrote.
func adoptFlag() ucli.Flag {
	return &ucli.BoolFlag{Name: "adopt", Usage: "take over live chains of the prefix that this state directory did not record (an earlier svcnat's)"}
}

func applyCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "apply",
		Usage:     "plan, confirm, commit atomically, verify and record; or apply a saved plan",
		ArgsUsage: "[PLANFILE]",
		Before:    checks(atMost(1, "saved plan file"), liveOnly, jsonApproval),
		Flags:     append(commitFlags(), remoteFlags()...),
		Action: func(c *ucli.Context) error {
			defer catchSignals(c)()
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			if f := c.Args().First(); f != "" {
				return applySaved(c, g, f)
			}
			cfg, node, e, err := openConfigured(c, g, true)
			if err != nil {
				return err
			}
			if err := remoteSafety(c, g, e); err != nil {
				return err
			}
			v := newCommitView(c, g)
			e.Hooks = v.hooks(c.Bool("auto-approve"))
			var res *engine.Result
			if from := e.Detection.From; from != nil {
				// --backend names another backend than the one holding
				// svcnat's rules: they move, in one step.
				res, err = e.Migrate(c.Context, cfg, node, from)
			} else {
				res, err = e.Apply(c.Context, cfg, node)
			}
			writeMetricsFile(c, res, err)
			if err := v.done(res, err); err != nil {
				return err
			}
			return v.confirmation(e, res)
		},
	}
}

func applySaved(c *ucli.Context, g Globals, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return notAPlan("apply", file, nil, err, "; nothing was changed")
	}
	// From here on the file is a saved plan: every refusal of it is the
	// run's (a refused document with --json, engineErrors' reason).
	v := newCommitView(c, g)
	p, digest, err := planner.UnmarshalPlan(data, kernel.Pure)
	if err != nil {
		if err := notAPlan("apply", file, data, err, "; nothing was changed"); err != nil {
			return err
		}
		// Not svcnat's plan as it was made: only making it again helps.
		return v.done(nil, &planUnusableError{file: file, err: err,
			hint: fmt.Sprintf("make the plan again (svcnat plan -out %s) and review it", file)})
	}
	e, err := openEngine(c, g, p.Prefix)
	if errors.Is(err, kernel.ErrOtherBackend) {
		return withHint(err, fmt.Sprintf("a saved plan is for one backend and cannot move svcnat's rules: run svcnat apply --backend %s without a plan file, which shows both plans and asks first", g.Backend))
	}
	if err != nil {
		return err
	}
	if err := remoteSafety(c, g, e); err != nil {
		return err
	}
	e.Hooks = v.hooks(true)
	res, err := e.ApplySaved(c.Context, p, digest)
	writeMetricsFile(c, res, err)
	var stale *engine.StaleError
	if errors.As(err, &stale) {
		// The live rules already what the plan wants: applied before
		// (this plan, or one like it). A diff "since" would list the
		// plan's own changes as if someone else had made them.
		// A destroy plan is made again by plan -destroy: plan alone would
		// make a plan of the configuration, which apply of FILE then
		// commits instead of removing everything.
		again, now := "svcnat plan", "svcnat plan shows what the configuration would change now"
		if p.Destroy {
			again, now = "svcnat plan -destroy", "svcnat plan -destroy shows what destroy would remove now"
		}
		if planner.New(p.Prefix, p.Backend, p.Desired, stale.Since.Desired).Empty() {
			return v.done(nil, &alreadyAppliedError{file: file, hint: now})
		}
		newChangesView(c.App.ErrWriter, false, "The live rules changed since this plan was made (+ added since, - gone since)").Plan(stale.Since)
		return v.done(nil, &stalePlanError{file: file, err: err, hint: "run " + again + " again"})
	}
	if err := v.done(res, err); err != nil {
		return err
	}
	if res.Op == engine.OpDestroy && !g.JSON {
		destroyed(c.App.Writer, res) // a plan -destroy file
	}
	return v.confirmation(e, res)
}

// catchSignals makes the stop signals cancel c.Context instead of killing
// svcnat, for the commands that change rules (apply, rollback, destroy):
// it is their first step, so a signal that arrives while the backends are
// surveyed, the plan is made, the lock awaited or the prompt shown is not
// lost. Commands that only read keep the default: a signal ends them.
func catchSignals(c *ucli.Context) (stop func()) {
	ctx, stop := signal.NotifyContext(c.Context, stopSignals...)
	c.Context = ctx
	return stop
}

// stopSignals are the signals that make an apply stop and roll back: Ctrl-C,
// a service manager's SIGTERM, and the SIGHUP of an SSH session that drops
// while an edge box reconfigures itself.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// confirm asks on a terminal; without one it refuses rather than guess. A
// signal at the prompt cancels.
func confirm(ctx context.Context, env Env, in io.Reader, w io.Writer, verb engine.Op) (bool, error) {
	if !env.terminal(in) {
		// Only apply takes a saved plan: rollback and destroy have none.
		hint := "review the plan and run again with -auto-approve"
		if verb == engine.OpApply {
			hint += ", or apply a saved plan (plan -out FILE)"
		}
		return false, withHint(fmt.Errorf("%s needs confirmation and standard input is not a terminal; nothing was changed", verb), hint)
	}
	line, got := ask(ctx, in, w, "\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ", nil)
	return got == answered && line == "yes", nil
}

// How a question at the terminal ended.
type answer int

const (
	answered    answer = iota
	interrupted        // ctx ended: a signal
	expired            // the deadline passed
)

// ask writes question and reads one line (trimmed) from in, until ctx
// ends or deadline (nil: none) fires.
func ask(ctx context.Context, in io.Reader, w io.Writer, question string, deadline <-chan time.Time) (string, answer) {
	fmt.Fprint(w, question)
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(in).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	select {
	case line := <-lines:
		return line, answered
	case <-ctx.Done():
		fmt.Fprintln(w)
		return "", interrupted
	case <-deadline:
		fmt.Fprintln(w)
		return "", expired
	}
}
