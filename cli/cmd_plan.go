package cli

import (
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/state"
)

func planCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "plan",
		Usage: "diff the chains the configuration implies against the live rules (iptables-save)",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "out", Usage: "save the plan to `FILE` for `svcnat apply FILE`"},
			&ucli.BoolFlag{Name: "detailed-exitcode", Usage: "exit 0 when there are no changes, 1 on error, 2 when there are changes"},
		},
		Action: func(c *ucli.Context) error {
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			cfg, k, err := openConfigured(c, g)
			if err != nil {
				return err
			}
			p, err := makePlan(g, cfg, k)
			if err != nil {
				return err
			}
			if err := newPlanView(c.App.Writer, g.JSON, g.Color).Plan(p); err != nil {
				return err
			}
			if out := c.String("out"); out != "" {
				data, err := planner.MarshalPlan(p, configDigest(cfg))
				if err != nil {
					return err
				}
				if err := state.WriteFileAtomic(out, data, 0o600); err != nil {
					return fmt.Errorf("saving the plan: %w", err)
				}
				if !g.JSON {
					fmt.Fprintf(c.App.Writer, "\nSaved the plan to %s. To perform exactly these actions, run:\n    svcnat apply %s\n", out, out)
				}
			}
			if c.Bool("detailed-exitcode") && !p.Empty() {
				return exitWith(ExitChanges, nil)
			}
			return nil
		},
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
