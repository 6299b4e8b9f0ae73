package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/probe"
	"github.com/svcnat/svcnat/internal/state"
)

// remoteFlags are apply's flags for changing a box over the network its
// rules steer.
func remoteFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.DurationFlag{Name: "confirm-timeout", EnvVars: []string{"SVCNAT_CONFIRM_TIMEOUT"},
			Usage: "keep the new rules only if confirmed within this time (at the prompt, with svcnat confirm, or by passing probes); " +
				"else a watcher that outlives this process and its session reverts them"},
		&ucli.StringSliceFlag{Name: "probe",
			Usage: "after the commit, check tcp://IP:PORT (a connection is accepted), http://IP:PORT/PATH (a 2xx answer; redirects are not followed) or " +
				"udp://IP:PORT?send=PING&expect=PONG (a reply) from the rules' network namespace; IP addresses only, no host names; " +
				"any failure rolls the apply back (repeatable)"},
		&ucli.DurationFlag{Name: "probe-timeout", Value: 10 * time.Second, EnvVars: []string{"SVCNAT_PROBE_TIMEOUT"},
			Usage: "how long each probe is retried, from its own first attempt, before it counts as failed"},
	}
}

// remoteSafety reads the remote flags into the engine: its probes, and
// for --confirm-timeout, how to start the watcher that holds the deadline
// (svcnat confirm-watch, detached from this process and its session).
func remoteSafety(c *ucli.Context, g Globals, e *engine.Engine) error {
	for _, raw := range c.StringSlice("probe") {
		p, err := probe.Parse(raw)
		if err != nil {
			return withHint(fmt.Errorf("--probe %q: %w; nothing was changed", raw, err),
				"use tcp://IP:PORT, http://IP:PORT/PATH or udp://IP:PORT?send=PING&expect=PONG with an IP address: "+
					"probes resolve no host names, as a lookup would leave the --netns namespace")
		}
		e.Probes = append(e.Probes, p)
	}
	e.ProbeTimeout = c.Duration("probe-timeout")
	timeout := c.Duration("confirm-timeout")
	switch {
	case timeout < 0:
		return fmt.Errorf("--confirm-timeout %s is negative", timeout)
	case timeout == 0:
		return nil
	}
	// The watcher starts in another directory (systemd: /) and
	// environment: it gets what it needs as flags, resolved.
	stateDir, err := filepath.Abs(g.StateDir)
	if err != nil {
		return err
	}
	runtimeDir, err := filepath.Abs(g.RuntimeDir)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding svcnat's own binary for the revert watcher: %w", err)
	}
	env := envOf(c)
	// Started by ip netns exec A without --netns, svcnat works in A; the
	// watcher (systemd starts it outside A) must too.
	netns := g.NetNS
	if netns == "" {
		netns = e.RunsIn
	}
	e.Confirmation = &engine.ConfirmOptions{Timeout: timeout, Watch: func(id string) (string, error) {
		// Every one as a flag, even an empty --netns (one word: no empty
		// argument for systemd-run to carry): a flag wins over the
		// SVCNAT_* environment the watcher may inherit.
		argv := []string{exe, "--state-dir", stateDir, "--runtime-dir", runtimeDir, "--backend", string(e.Kernel.Name()), "--netns=" + netns,
			"confirm-watch", "--id", id}
		return env.Detach("svcnat-revert-"+id, argv, filepath.Join(stateDir, "watcher.log"))
	}}
	return nil
}

// confirmation follows an apply that passed its probes or awaits
// confirmation. At a terminal it asks until the deadline, and reverts at
// once unless the answer is yes; elsewhere (a CI job, --json) it says how
// to confirm and leaves the deadline to the watcher.
func (v *commitView) confirmation(e *engine.Engine, res *engine.Result) error {
	w, st := v.c.App.Writer, newStyle(v.g.Color)
	if res == nil {
		return nil
	}
	if res.Probed > 0 && !v.g.JSON {
		said := "."
		if res.ProbeConfirmed {
			said = ": the apply is confirmed."
		}
		fmt.Fprintf(w, "%s passed%s\n", plural(res.Probed, "probe"), said)
	}
	pd := res.Pending
	if pd == nil {
		return nil
	}
	env := envOf(v.c)
	if v.g.JSON || !env.terminal(v.c.App.Reader) {
		out := w
		if v.g.JSON {
			out = v.c.App.ErrWriter
		}
		fmt.Fprintf(out, "\nApply %s awaits confirmation: generation %d stays only if confirmed by %s (within %s).\n"+
			"Run svcnat confirm %s to keep it; otherwise it is reverted then (watcher: %s).\n",
			pd.ID, pd.Generation, state.When(pd.Deadline), pd.Timeout, pd.ID, pd.Watcher)
		if err := v.outputErr(); err != nil {
			return lostOutput(res, err) // the way to confirm must not be lost in silence
		}
		return nil
	}
	fmt.Fprintf(w, "\nApply %s awaits confirmation: the new rules stay only if confirmed by %s (within %s).\n"+
		"If this session is cut, they are reverted then (watcher: %s).\n", pd.ID, state.When(pd.Deadline), pd.Timeout, pd.Watcher)
	line, got := ask(v.c.Context, v.c.App.Reader, w,
		"\nKeep these rules?\n  Only 'yes' keeps them; anything else reverts them now.\n\n  Enter a value: ",
		time.After(time.Until(pd.Deadline)))
	var reason string
	switch {
	case got == answered && line == "yes":
		if _, err := e.Confirm(context.Background(), pd.ID); err != nil {
			return err
		}
		fmt.Fprintf(w, "\n%s generation %d stays.\n", st.bold("Confirmed:"), pd.Generation)
		return nil
	case got == answered:
		reason = "declined at the confirmation prompt"
	case got == expired:
		reason = fmt.Sprintf("not confirmed within %s", pd.Timeout)
	default:
		reason = "interrupted at the confirmation prompt"
	}
	// The context may have ended (a signal): the revert must still run.
	rev, err := e.Revert(context.Background(), pd.ID, reason)
	var np *engine.NotPendingError
	if errors.As(err, &np) && np.Reverted != nil && np.Reverted.Generation == pd.Generation {
		// The watcher got there first.
		return exitWith(ExitError, fmt.Errorf("apply %s was reverted by its watcher at %s: %s", pd.ID, state.When(np.RevertedAt), np.Reverted.Reverted))
	}
	if err := v.done(rev, err); err != nil {
		return err
	}
	return exitWith(ExitError, fmt.Errorf("apply %s reverted: %s", pd.ID, reason))
}

func lockTimeoutFlag() ucli.Flag {
	return &ucli.DurationFlag{Name: "lock-timeout", Value: 10 * time.Second, EnvVars: []string{"SVCNAT_LOCK_TIMEOUT"},
		Usage: "how long to wait for another svcnat holding the state lock"}
}

func confirmCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "confirm",
		Usage:     "keep the rules of an apply that awaits confirmation (apply --confirm-timeout), from any shell",
		ArgsUsage: "[ID]",
		Before:    checks(atMost(1, "apply ID"), liveOnly),
		Flags:     []ucli.Flag{lockTimeoutFlag()},
		Action: func(c *ucli.Context) error {
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			if err := awaitingIn(g.StateDir); err != nil {
				return err
			}
			// Confirming touches only the state directory: no kernel.
			e := &engine.Engine{StateDir: g.StateDir, LockTimeout: c.Duration("lock-timeout")}
			pd, err := e.Confirm(c.Context, c.Args().First())
			if errors.Is(err, engine.ErrNothingPending) {
				err = withHint(err, "only an apply made with --confirm-timeout awaits confirmation; svcnat show says what is recorded in "+g.StateDir)
			}
			if g.JSON {
				return confirmedJSON(c.App.Writer, g.StateDir, pd, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "Confirmed apply %s: generation %d stays.\n", pd.ID, pd.Generation)
			return nil
		},
	}
}

func revertCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "revert",
		Usage:     "return the rules of an apply that awaits confirmation to the previous generation now",
		ArgsUsage: "[ID]",
		Before:    checks(atMost(1, "apply ID"), liveOnly),
		Flags:     []ucli.Flag{lockTimeoutFlag()},
		Action: func(c *ucli.Context) error {
			defer catchSignals(c)()
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			if err := awaitingIn(g.StateDir); err != nil {
				return err
			}
			g, _, e, err := openOwned(c)
			if err != nil {
				return err
			}
			v := newCommitView(c, g)
			e.Hooks = v.hooks(true)
			res, err := e.Revert(c.Context, c.Args().First(), "reverted with svcnat revert")
			if err := v.done(res, err); err != nil {
				return err
			}
			if !g.JSON {
				fmt.Fprintf(c.App.Writer, "Apply %s (generation %d) is reverted.\n", res.Reverted.ID, res.Reverted.Generation)
			}
			return nil
		},
	}
}

// confirmedJSON writes confirm's result (README "Results as JSON"): the
// document of every command that changes rules, without a plan, as
// confirm changes none.
func confirmedJSON(w io.Writer, stateDir string, pd *state.Pending, err error) error {
	r := newJSONResult("confirm", stateDir, nil, nil, err)
	if err == nil {
		g := pd.Generation
		r.Outcome, r.Generation = outcomeConfirmed, &g
		r.Confirmed = &jsonConfirmed{ID: pd.ID, Generation: pd.Generation}
	}
	if werr := (&resultDoc{w: w}).result(r); err == nil && werr != nil {
		return fmt.Errorf("apply %s is confirmed, but the output was lost: %w", pd.ID, werr)
	}
	return err
}

// awaitingIn refuses, for confirm and revert, a state directory that does
// not exist: it records no pending apply, and they do not create it (a
// mistyped --state-dir would leave a directory behind, as plan does not).
func awaitingIn(stateDir string) error {
	if state.Exists(stateDir) {
		return nil
	}
	return withHint(fmt.Errorf("%w: state directory %s does not exist", engine.ErrNothingPending, stateDir),
		"give the --state-dir (or SVCNAT_STATE_DIR) of the apply that awaits confirmation")
}

// watchCommand is the watcher apply --confirm-timeout starts: it holds
// one pending apply's deadline, in a process of its own.
func watchCommand() *ucli.Command {
	return &ucli.Command{
		Name:   "confirm-watch",
		Hidden: true,
		Usage:  "hold the deadline of a pending apply and revert it unless confirmed (started by apply --confirm-timeout)",
		Flags:  []ucli.Flag{&ucli.StringFlag{Name: "id", Required: true, Usage: "the pending apply"}},
		Action: func(c *ucli.Context) error {
			// A hangup is the session that started apply going away:
			// exactly what the watcher outlives.
			signal.Ignore(syscall.SIGHUP)
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil)).With("id", c.String("id"))
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			e, err := openEngine(c, g, engine.RecordedPrefix(g.StateDir))
			if err != nil {
				log.Error("opening the host", "err", err)
				return err
			}
			log.Info("watching", "state_dir", g.StateDir, "pid", os.Getpid())
			res, err := e.Watch(ctx, c.String("id"))
			switch {
			case err != nil:
				log.Error("watch ended without settling the apply", "err", err)
				return err
			case res == nil:
				log.Info("settled without a revert (confirmed, reverted, or another watcher)")
			default:
				log.Info("reverted", "generation", res.Reverted.Generation, "reason", res.Reason, "recorded", res.Generation)
			}
			return nil
		},
	}
}

// pendingHint says what to do about a pending apply.
func pendingHint(pd engine.PendingApply) string {
	switch {
	case pd.Status == state.PendingApplying && pd.Watched:
		return "its watcher is reverting it; run again in a moment"
	case pd.Watched:
		return fmt.Sprintf("keep it with svcnat confirm %s, revert it now with svcnat revert %s, or wait for the revert at %s",
			pd.ID, pd.ID, state.When(pd.Deadline))
	}
	return fmt.Sprintf("keep it with svcnat confirm %s, or revert it with svcnat revert %s", pd.ID, pd.ID)
}
