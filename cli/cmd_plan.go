package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/engine"
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
			cfg, node, e, err := openConfigured(c, g)
			if err != nil {
				return err
			}
			p, err := e.Plan(cfg, node)
			if err != nil {
				return err
			}
			if err := newPlanView(c.App.Writer, g.JSON, g.Color).Plan(p); err != nil {
				return err
			}
			if len(p.Blocked) > 0 {
				// As Terraform's plan fails on a prevent_destroy resource:
				// a plan apply must refuse is an error, not a plan.
				return withHint(fmt.Errorf("svcnat apply would refuse this plan: %s that svcnat does not own %s into chains it deletes (see Blocked above)",
					plural(len(p.Blocked), "rule"), map[bool]string{true: "jumps", false: "jump"}[len(p.Blocked) == 1]),
					"remove or change those rules first; svcnat never edits rules it does not own")
			}
			if out := c.String("out"); out != "" {
				if err := engine.SavePlan(out, p, engine.ConfigDigest(cfg)); err != nil {
					return err
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
		ArgsUsage: "[FILE|DIR]",
		Before:    configArg,
	}
}
