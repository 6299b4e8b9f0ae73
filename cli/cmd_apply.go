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

	"github.com/svcnat/svcnat/applier"
	"github.com/svcnat/svcnat/config"
	"github.com/svcnat/svcnat/conntrack"
	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
	"github.com/svcnat/svcnat/state"
)

func commitFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "auto-approve", Usage: "do not ask for confirmation"},
		&ucli.DurationFlag{Name: "lock-timeout", Value: 10 * time.Second, EnvVars: []string{"SVCNAT_LOCK_TIMEOUT"},
			Usage: "how long to wait for another svcnat holding the state lock"},
	}
}

func applyCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "apply",
		Usage:     "plan, confirm, commit atomically, verify and record; or apply a saved plan",
		ArgsUsage: "[PLANFILE]",
		Flags:     commitFlags(),
		Action: func(c *ucli.Context) error {
			defer catchSignals(c)()
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			if c.Args().Len() > 1 {
				err := fmt.Errorf("apply takes at most one saved plan file, got %q", c.Args().Slice())
				for _, a := range c.Args().Tail() {
					if strings.HasPrefix(a, "-") {
						return withHint(err, "put flags before the plan file: svcnat apply [flags] PLANFILE")
					}
				}
				return err
			}
			if f := c.Args().First(); f != "" {
				return applySaved(c, g, f)
			}
			cfg, k, err := openConfigured(c, g)
			if err != nil {
				return err
			}
			return withLock(c, g, func(d *state.Dir, st *state.State) error {
				if st.Prefix != "" && st.Prefix != cfg.Settings.ChainPrefix {
					// Applying under a new prefix would leave the old
					// chains live and out of reach of every command.
					return withHint(fmt.Errorf("chain_prefix changed from %s to %s; nothing was changed", st.Prefix, cfg.Settings.ChainPrefix),
						fmt.Sprintf("run svcnat destroy to remove the %s-* chains first (it uses the prefix recorded in %s), then apply", st.Prefix, g.StateDir))
				}
				p, err := makePlan(g, cfg, k)
				if err != nil {
					return err
				}
				return commitPlan(c, g, k, d, st, p, configDigest(cfg), "apply", c.Bool("auto-approve"))
			})
		},
	}
}

func applySaved(c *ucli.Context, g Globals, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	p, digest, err := planner.UnmarshalPlan(data)
	if err != nil {
		return err
	}
	// A plan file is data anyone can write: its prefix decides which
	// chains svcnat treats as its own, so it gets the configuration's
	// checks, and must be the prefix svcnat applied here before.
	if !config.ValidChainPrefix(p.Prefix) {
		return fmt.Errorf("the plan's chain prefix %q is not one svcnat may own; nothing was changed", p.Prefix)
	}
	if recorded := recordedPrefix(g); recorded != "" && recorded != p.Prefix {
		return withHint(fmt.Errorf("the plan is for chains %s-*, but svcnat manages %s-* here; nothing was changed", p.Prefix, recorded),
			"make the plan again with the configuration of this host")
	}
	k, err := openKernel(g, p.Prefix)
	if err != nil {
		return err
	}
	if k.BackendName() != p.Backend {
		return fmt.Errorf("the plan was made for the %s backend, this host uses %s", p.Backend, k.BackendName())
	}
	return withLock(c, g, func(d *state.Dir, st *state.State) error {
		live, err := saveLive(k, p.Desired)
		if err != nil {
			return err
		}
		now := planner.New(p.Prefix, p.Backend, p.Desired, live)
		if now.Fingerprint != p.Fingerprint {
			// What changed since the plan was made reads as a plan
			// from its snapshot to the live rules.
			since := planner.New(p.Prefix, p.Backend, live, p.Live)
			newChangesView(c.App.ErrWriter, false, "The live rules changed since this plan was made (+ added since, - gone since)").Plan(since)
			return withHint(fmt.Errorf("stale plan %s: nothing was changed", file), "run svcnat plan again")
		}
		// The saved plan holds only owned rules; which foreign rules pin
		// its deletions is known only against the live dump.
		p.Blocked = now.Blocked
		// A saved plan was reviewed when it was made: no second prompt.
		return commitPlan(c, g, k, d, st, p, digest, "apply", true)
	})
}

// withLock takes the state lock (bounded by --lock-timeout, and by a
// signal) and loads the state.
func withLock(c *ucli.Context, g Globals, fn func(*state.Dir, *state.State) error) error {
	d, err := state.Open(g.StateDir)
	if err != nil {
		return err
	}
	lock, err := d.Lock(c.Context, c.Duration("lock-timeout"))
	if err != nil {
		if errors.Is(err, state.ErrLocked) {
			return withHint(err, "another svcnat is applying; wait for it, or raise --lock-timeout")
		}
		return err
	}
	defer lock.Unlock()
	st, err := d.Load()
	if err != nil {
		return err
	}
	return fn(d, st)
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

// commitPlan shows the plan, asks, backs up the live owned rules, applies,
// verifies (rolling back on failure) and records the new generation.
func commitPlan(c *ucli.Context, g Globals, k kernel, d *state.Dir, st *state.State, p *planner.Plan, digest, verb string, approved bool) error {
	w := c.App.Writer
	if err := newPlanView(w, g.JSON, g.Color).Plan(p); err != nil {
		return err
	}
	if len(p.Blocked) > 0 {
		return withHint(fmt.Errorf("rules svcnat does not own jump into chains this %s would delete; nothing was changed:\n  %s",
			verb, strings.Join(p.Blocked, "\n  ")), "remove or change those rules first; svcnat never edits rules it does not own")
	}
	gens, rulesDigest := generationFiles(p)
	if p.Empty() {
		// The rules are right; the record may not be, when an earlier
		// apply was killed between its commit and writing the state.
		if !(st.Generation == 0 && blank(p)) && st.RulesDigest != rulesDigest {
			return record(c, g, d, st, p, gens, rulesDigest, digest, "The rules already match the plan (an earlier apply stopped before recording them):")
		}
		return nil
	}
	if !approved {
		if g.JSON {
			return withHint(fmt.Errorf("%s --json cannot ask for confirmation; nothing was changed", verb), "pass -auto-approve")
		}
		ok, err := confirm(c.Context, c.App.Reader, w, verb)
		if err != nil {
			return err
		}
		if !ok {
			return exitWith(ExitError, fmt.Errorf("%s cancelled; nothing was changed", verb))
		}
	}
	gen := st.Generation + 1
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		if _, err := d.SaveBackup(gen, f.Key(), []byte(p.Live[f].Text())); err != nil {
			return fmt.Errorf("saving the backup: %w", err)
		}
	}
	start := time.Now()
	if err := applier.Apply(c.Context, k, p, applier.Options{}); err != nil {
		return fmt.Errorf("%s failed: %w", verb, err)
	}
	// UDP has no connection to end: entries DNATed to endpoints that are
	// gone would keep clients talking to them.
	if flows := planner.StaleUDP(p); len(flows) > 0 && g.SaveFile == "" {
		n, err := conntrack.Clear(g.NetNS, flows)
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "svcnat: warning: the rules are applied, but %v\n", err)
		} else if n > 0 && !g.JSON {
			fmt.Fprintf(w, "Deleted the UDP conntrack entries of %s to removed endpoints.\n", plural(n, "flow"))
		}
	}
	s := p.Summary()
	return record(c, g, d, st, p, gens, rulesDigest, digest, fmt.Sprintf("%s %s added, %d changed, %d removed in %s;",
		newStyle(g.Color).bold(strings.ToUpper(verb[:1])+verb[1:]+" complete!"), plural(s.Add, "chain"), s.Change, s.Remove, time.Since(start).Round(time.Millisecond)))
}

// blank reports whether the plan wants no rules at all (destroy), so that
// destroying nothing on a host svcnat never applied to records nothing.
func blank(p *planner.Plan) bool {
	for _, rs := range p.Desired {
		if rs.RuleCount() > 0 {
			return false
		}
	}
	return true
}

// generationFiles returns the desired owned rules per family, as the
// state records them, and their digest.
func generationFiles(p *planner.Plan) (map[string][]byte, string) {
	gens := map[string][]byte{}
	var all [][]byte
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		t := []byte(p.Desired[f].Text())
		gens[f.Key()] = t
		all = append(all, t)
	}
	return gens, state.Digest(all...)
}

// record commits the next generation to the state directory.
func record(c *ucli.Context, g Globals, d *state.Dir, st *state.State, p *planner.Plan, gens map[string][]byte, rulesDigest, digest, said string) error {
	gen := st.Generation + 1
	st.Generation = gen
	st.ConfigDigest = digest
	st.RulesDigest = rulesDigest
	st.Backend = p.Backend
	st.Prefix = p.Prefix
	if blank(p) {
		st.Prefix = "" // destroyed: nothing is owned, any prefix may come next
	}
	st.AppliedAt = time.Now().UTC()
	if err := d.Commit(st, gens); err != nil {
		return fmt.Errorf("the rules are applied but recording generation %d failed: %w", gen, err)
	}
	if !g.JSON {
		fmt.Fprintf(c.App.Writer, "\n%s generation %d recorded in %s.\n", said, gen, d.Path())
	}
	return nil
}

// confirm asks on a terminal; without one it refuses rather than guess. A
// signal at the prompt cancels.
func confirm(ctx context.Context, in io.Reader, w io.Writer, verb string) (bool, error) {
	f, ok := in.(*os.File)
	if !ok || !isTerminal(f) {
		return false, withHint(fmt.Errorf("%s needs confirmation and standard input is not a terminal; nothing was changed", verb),
			"review the plan and run again with -auto-approve, or apply a saved plan (plan -out FILE)")
	}
	fmt.Fprintf(w, "\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(in).ReadString('\n')
		answer <- line
	}()
	select {
	case line := <-answer:
		return strings.TrimSpace(line) == "yes", nil
	case <-ctx.Done():
		fmt.Fprintln(w)
		return false, nil
	}
}
