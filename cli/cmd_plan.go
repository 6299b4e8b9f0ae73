package cli

import (
	"errors"
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
			adoptFlag(),
		},
		Action: func(c *ucli.Context) error {
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			if c.String("out") != "" && g.SaveFile != "" {
				// apply refuses such a file on every host: refused now,
				// before any work, rather than saved.
				return withHint(fmt.Errorf("plan -out saves a plan for svcnat apply, which cannot commit a plan made against --iptables-save"),
					"drop -out to review the plan, or make it on the host with the live rules")
			}
			cfg, node, e, err := openConfigured(c, g)
			if err != nil {
				return err
			}
			p, err := e.Plan(cfg, node)
			if err != nil {
				return err
			}
			// What apply would refuse, asked of the code apply runs: plan
			// and apply cannot disagree.
			refusal, err := e.ApplyRefusal(p)
			if err != nil {
				return err
			}
			if err := newPlanView(c.App.Writer, g.JSON, g.Color).PlanRefused(p, refusal); err != nil {
				return err
			}
			if refusalReason(refusal) != "" {
				// As Terraform's plan fails on a prevent_destroy resource:
				// a plan apply must refuse is an error, not a plan.
				err := fmt.Errorf("svcnat apply would refuse this plan: %w", refusal)
				if he := (*hintError)(nil); errors.As(hinted(refusal), &he) {
					return withHint(err, he.hint)
				}
				return err
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
