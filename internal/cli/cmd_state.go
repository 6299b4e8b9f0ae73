package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

func rollbackCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "rollback",
		Usage: "return the owned chains to the previous applied generation, or to generation N with --to N (recorded as a new generation)",
		Flags: append(commitFlags(), &ucli.Int64Flag{Name: "to", Usage: "return to generation `N` (svcnat history lists the kept ones) instead of the previous one"}),
		Action: func(c *ucli.Context) error {
			defer catchSignals(c)()
			to := c.Int64("to")
			if c.IsSet("to") && to < 1 {
				return withHint(fmt.Errorf("invalid value %d for --to: generations are numbered from 1", to), "svcnat history lists the kept generations")
			}
			g, prefix, e, err := openOwned(c)
			if err != nil {
				return err
			}
			v := newCommitView(c, g)
			e.Hooks = v.hooks(c.Bool("auto-approve"))
			res, err := e.RollbackTo(c.Context, prefix, to)
			writeMetricsFile(c, res, err)
			return v.done(res, err)
		},
		Before: checks(noArgs, liveOnly, jsonApproval),
	}
}

func destroyCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "destroy",
		Usage: "remove every owned chain and jump rule, touching nothing else",
		Flags: commitFlags(),
		Action: func(c *ucli.Context) error {
			defer catchSignals(c)()
			g, prefix, e, err := openOwned(c)
			if err != nil {
				return err
			}
			v := newCommitView(c, g)
			e.Hooks = v.hooks(c.Bool("auto-approve"))
			res, err := e.Destroy(c.Context, prefix)
			writeMetricsFile(c, res, err)
			if err := v.done(res, err); err != nil || g.JSON {
				return err
			}
			destroyed(c.App.Writer, res)
			return nil
		},
		Before: checks(noArgs, liveOnly, jsonApproval),
	}
}

// destroyed says what a destroy did beyond the plan: the tables it gave
// back, and a record it kept because the set it removed was not the
// recorded one.
func destroyed(w io.Writer, res *engine.Result) {
	if res.KeptRecord && res.Applied {
		s := res.Plan.Summary()
		fmt.Fprintf(w, "\nDestroy complete! %s added, %d changed, %d removed (%s written) in %s; nothing recorded: the record in %s describes the set in the other backend, which stays.\n",
			plural(s.Add, objectWord(res.Plan.Backend)), s.Change, s.Remove, plural(res.Lines, "line"), res.Took.Round(time.Millisecond), res.StateDir)
	}
	if len(res.TablesRemoved) > 0 {
		fmt.Fprintf(w, "Removed the tables svcnat's applies had created, now empty: %s.\n", strings.Join(res.TablesRemoved, ", "))
	}
}

// watcherState says how a pending apply's deadline is held.
func watcherState(pd *engine.PendingApply) string {
	if !pd.Watched {
		return pd.Watcher + ", gone: nothing will revert it"
	}
	return pd.Watcher
}

func showCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "show",
		Usage:     "the owned live rules grouped by service, the health reconcile's checks found of each endpoint, and any drift from the last applied generation; or a saved plan",
		ArgsUsage: "[PLANFILE]",
		Action: showJSONErrors(func(c *ucli.Context) error {
			if f := c.Args().First(); f != "" {
				return showPlanFile(c, f)
			}
			g, prefix, e, err := openOwned(c)
			if err != nil {
				return err
			}
			s, err := e.Show(prefix)
			if err != nil {
				return err
			}
			if g.JSON {
				return writeStatusJSON(c.App.Writer, s)
			}
			w, st := c.App.Writer, newStyle(g.Color)
			if pd := s.Pending; pd != nil {
				fmt.Fprintf(w, "%s apply %s (generation %d, from generation %d) awaits confirmation until %s; watcher: %s.\n  %s\n\n",
					st.bold("Pending:"), pd.ID, pd.Generation, pd.Previous, state.When(pd.Deadline), watcherState(pd), pendingHint(*pd))
			}
			inv := s.Owned
			rules := plural(inv.Rules, "rule")
			if s.Backend == kernel.NFTables {
				rules = fmt.Sprintf("%d rules and elements", inv.Rules)
			}
			fmt.Fprintf(w, "%s owns %s and %s on the %s backend.\n", s.Prefix, plural(inv.Chains, objectWord(s.Backend)), rules, s.Backend)
			group := func(title string, ls []backend.Located) {
				fmt.Fprintf(w, "\n%s\n", st.bold(title))
				for _, l := range ls {
					fmt.Fprintf(w, "  %s %-6s %s\n", l.Family, l.Table, l.Rule)
				}
			}
			for _, n := range inv.Names() {
				group("service "+n, inv.Services[n])
			}
			if len(inv.Shared) > 0 {
				group("shared by every service", inv.Shared)
			}
			writeShowHealth(w, st, newJSONShowHealth(s.Health))
			writeInterrupted(w, st, s.Interrupted, "the next apply or destroy clears them")
			if s.Drift == nil {
				fmt.Fprintf(w, "\nNo generation recorded in %s: nothing to compare for drift.\n", s.StateDir)
				writeUndone(w, s.State)
				return nil
			}
			fmt.Fprintf(w, "\nGeneration %d applied %s", s.State.Generation, s.State.AppliedAt.Format("2006-01-02 15:04:05 MST"))
			if of := revertOf(s.State); of != 0 {
				why, _ := s.State.Info(of)
				fmt.Fprintf(w, ", reverting generation %d (%s)", of, why.Reverted)
			}
			fmt.Fprintln(w, ".")
			writeUndone(w, s.State)
			if s.HealthDrift != nil && !s.HealthDrift.Empty() {
				// Not drift: reconcile changes endpoints without a
				// generation (the generation is the configuration's).
				n := s.HealthDrift.Summary()
				fmt.Fprintf(w, "svcnat reconcile's health checks changed %s since (the endpoints they took out or put back; no generation records them).\n",
					plural(n.Add+n.Change+n.Remove, "object"))
			}
			if s.Drift.Empty() {
				if s.HealthDrift != nil && !s.HealthDrift.Empty() {
					fmt.Fprintln(w, "No other drift.")
					return nil
				}
				fmt.Fprintln(w, "No drift: the live owned rules are exactly what was applied.")
				return nil
			}
			return newChangesView(w, g.Color, "Drift since then (+ present now, - gone since)").Plan(s.Drift)
		}),
		Before: showArgs,
	}
}

// revertOf is the generation the current one reverted, 0 when it is no
// revert.
func revertOf(st *state.State) int64 {
	if n := len(st.Generations); n > 0 {
		return st.Generations[n-1].RevertOf
	}
	return 0
}

// writeUndone says that the last apply was undone (state.Undone), and
// why, unless the current generation's revert already said it: an apply
// whose probes failed was rolled back without a generation of its own,
// and reconcile holds its configuration as it holds a reverted one.
func writeUndone(w io.Writer, st *state.State) {
	u := st.Undone
	if u == nil || u.Generation != 0 && u.Generation == revertOf(st) {
		return
	}
	what := "The last apply"
	if u.Generation != 0 {
		what += fmt.Sprintf(" (generation %d)", u.Generation)
	}
	fmt.Fprintf(w, "%s was undone at %s (%s): svcnat reconcile does not apply its configuration (%s) again until it changes or an apply by hand records it.\n",
		what, u.At.Format("2006-01-02 15:04:05 MST"), u.Reason, u.ConfigDigest)
}

// showPlanFile is show PLANFILE (terraform show's saved plan): the plan
// as plan showed it, read from the file alone, with the checks apply
// makes of the file itself (planner.UnmarshalPlan). It opens neither the
// host nor the state directory: no root, no iptables.
func showPlanFile(c *ucli.Context, file string) error {
	g, err := readGlobals(c)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return notAPlan("show", file, nil, err, "")
	}
	p, digest, err := planner.UnmarshalPlan(data, kernel.Pure)
	if err != nil {
		if err := notAPlan("show", file, data, err, ""); err != nil {
			return err
		}
		// The error apply gives the same file (reason plan_unusable in
		// --json); show, which changes nothing, drops its last clause.
		return &planUnusableError{file: file, err: err,
			hint: fmt.Sprintf("make the plan again (svcnat plan -out %s) and review it", file)}
	}
	if g.JSON {
		return writeSavedPlanJSON(c.App.Writer, file, p, digest)
	}
	w := c.App.Writer
	what := "an apply of the configuration " + digest
	if p.Destroy {
		what = "a destroy of every owned chain"
	}
	fmt.Fprintf(w, "Saved plan %s: %s, made against the live rules with fingerprint %s; svcnat apply refuses it once they change.\n\n",
		file, what, p.Fingerprint)
	if err := newPlanView(w, false, g.Color).Plan(p); err != nil {
		return err
	}
	if !p.Empty() {
		fmt.Fprintf(w, "\nTo perform exactly these actions, run:\n    svcnat apply %s\n", file)
	}
	return nil
}
