package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
	"github.com/svcnat/svcnat/state"
)

func rollbackCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "rollback",
		Usage: "return the owned chains to the previous applied generation (recorded as a new generation)",
		Flags: commitFlags(),
		Action: func(c *ucli.Context) error {
			defer catchSignals(c)()
			g, prefix, k, err := openOwned(c)
			if err != nil {
				return err
			}
			return withLock(c, g, func(d *state.Dir, st *state.State) error {
				prev, err := st.Previous()
				if err != nil {
					return withHint(err, "rollback needs two applied generations; see svcnat show")
				}
				desired, err := generationRules(d, prev.Generation)
				if err != nil {
					return err
				}
				live, err := saveLive(k, desired)
				if err != nil {
					return err
				}
				p := planner.New(prefix, k.BackendName(), desired, live)
				fmt.Fprintf(c.App.Writer, "Rolling back from generation %d to generation %d (applied %s).\n\n",
					st.Generation, prev.Generation, prev.AppliedAt.Format("2006-01-02 15:04:05 MST"))
				return commitPlan(c, g, k, d, st, p, prev.ConfigDigest, "rollback", c.Bool("auto-approve"))
			})
		},
	}
}

func destroyCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "destroy",
		Usage: "remove every owned chain and jump rule, touching nothing else",
		Flags: commitFlags(),
		Action: func(c *ucli.Context) error {
			defer catchSignals(c)()
			g, prefix, k, err := openOwned(c)
			if err != nil {
				return err
			}
			return withLock(c, g, func(d *state.Dir, st *state.State) error {
				live, err := saveLive(k, nil)
				if err != nil {
					return err
				}
				p := planner.New(prefix, k.BackendName(), nil, live)
				return commitPlan(c, g, k, d, st, p, "", "destroy", c.Bool("auto-approve"))
			})
		},
	}
}

// openOwned prepares a command that works on what svcnat applied
// (rollback, destroy, show): the options, the owned prefix and the kernel.
func openOwned(c *ucli.Context) (Globals, string, kernel, error) {
	g, err := readGlobals(c)
	if err != nil {
		return g, "", nil, err
	}
	prefix, err := ownedPrefix(c, g)
	if err != nil {
		return g, "", nil, err
	}
	k, err := openKernel(g, prefix)
	return g, prefix, k, err
}

// ownedPrefix is the chain prefix of what svcnat applied: the one the
// state directory recorded, so that rollback, destroy and show work with a
// broken or missing configuration; before any apply, the configuration's.
func ownedPrefix(c *ucli.Context, g Globals) (string, error) {
	if p := recordedPrefix(g); p != "" {
		return p, nil
	}
	cfg, err := loadConfig(c, g)
	if err != nil {
		return "", err
	}
	return cfg.Settings.ChainPrefix, nil
}

// recordedPrefix is the prefix the state directory recorded, or "".
func recordedPrefix(g Globals) string {
	if _, err := os.Stat(g.StateDir); err != nil {
		return ""
	}
	d, err := state.Open(g.StateDir)
	if err != nil {
		return ""
	}
	st, err := d.Load()
	if err != nil {
		return ""
	}
	return st.Prefix
}

// generationRules reads the owned rules recorded for a generation.
func generationRules(d *state.Dir, gen int64) (map[rules.Family]*rules.Ruleset, error) {
	out := map[rules.Family]*rules.Ruleset{}
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		data, err := d.ReadGeneration(gen, f.Key())
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		rs, err := rules.ParseSave(f, strings.NewReader(string(data)))
		if err != nil {
			return nil, fmt.Errorf("generation %d %s rules: %w", gen, f, err)
		}
		out[f] = rs
	}
	return out, nil
}

func showCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "show",
		Usage: "the owned live rules grouped by service, and any drift from the last applied generation",
		Action: func(c *ucli.Context) error {
			g, prefix, k, err := openOwned(c)
			if err != nil {
				return err
			}
			live, err := saveLive(k, nil)
			if err != nil {
				return err
			}
			w, st := c.App.Writer, newStyle(g.Color)
			inv := planner.Take(live, prefix)
			fmt.Fprintf(w, "%s owns %s and %s on the %s backend.\n", prefix, plural(inv.Chains, "chain"), plural(inv.Rules, "rule"), k.BackendName())
			group := func(title string, ls []planner.Located) {
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
			// Drift: what changed since the last apply recorded.
			d, err := state.Open(g.StateDir)
			if err != nil {
				return err
			}
			s, err := d.Load()
			if err != nil {
				return err
			}
			if s.Generation == 0 {
				fmt.Fprintf(w, "\nNo generation recorded in %s: nothing to compare for drift.\n", d.Path())
				return nil
			}
			applied, err := generationRules(d, s.Generation)
			if err != nil {
				return err
			}
			drift := planner.New(prefix, k.BackendName(), live, applied)
			fmt.Fprintf(w, "\nGeneration %d applied %s.\n", s.Generation, s.AppliedAt.Format("2006-01-02 15:04:05 MST"))
			if drift.Empty() {
				fmt.Fprintln(w, "No drift: the live owned rules are exactly what was applied.")
				return nil
			}
			return newChangesView(w, g.Color, "Drift since then (+ present now, - gone since)").Plan(drift)
		},
	}
}
