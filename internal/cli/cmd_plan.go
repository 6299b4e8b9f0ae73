package cli

import (
	"errors"
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/planner"
)

func planCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "plan",
		Usage: "diff the chains the configuration implies against the live rules (iptables-save)",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "out", Usage: "save the plan to `FILE` for `svcnat apply FILE`"},
			&ucli.BoolFlag{Name: "detailed-exitcode", Usage: "exit 0 when there are no changes, 1 on error, 2 when there are changes"},
			&ucli.BoolFlag{Name: "destroy", Usage: "plan what svcnat destroy would remove: every owned chain and jump rule"},
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
			mp, err := makePlan(c, g)
			if err != nil {
				return err
			}
			op, p := mp.op, mp.plan
			// plan changes nothing: its document says of the refusal what
			// its stderr says (readOnly).
			refusal, removalRefusal := readOnlyErr(mp.refusal), readOnlyErr(mp.removalRefusal)
			if refusal == nil {
				// The removal's refusal is the migration's too: apply
				// --backend refuses the step whole (applyable and
				// refusal say so of the plan apply would commit).
				refusal = removalRefusal
			}
			if mp.removal != nil {
				err = writeMigrationPlan(c.App.Writer, g, p, refusal, mp.removal, removalRefusal)
			} else {
				err = newOpPlanView(c.App.Writer, op, g.JSON, g.Color).PlanRefused(p, refusal)
			}
			if err != nil {
				return err
			}
			if refusalReason(refusal) != "" {
				// As Terraform's plan fails on a prevent_destroy resource:
				// a plan apply must refuse is an error, not a plan.
				err := fmt.Errorf("svcnat %s would refuse this plan: %w", op, refusal)
				if he := (*hintError)(nil); errors.As(hinted(refusal), &he) {
					return withHint(err, he.hint)
				}
				return err
			}
			if out := c.String("out"); out != "" {
				if err := engine.SavePlan(out, p, mp.digest); err != nil {
					return err
				}
				if !g.JSON {
					fmt.Fprintf(c.App.Writer, "\nSaved the plan to %s. To perform exactly these actions, run:\n    svcnat apply %s\n", out, out)
				}
			}
			// Chains to adopt change the record, if not the rules.
			if c.Bool("detailed-exitcode") && (!p.Empty() || len(p.Adopting) > 0 || mp.removal != nil && !mp.removal.Empty()) {
				return exitWith(ExitChanges, nil)
			}
			return nil
		},
		ArgsUsage: "[FILE|DIR]",
		Before:    configArg,
	}
}

// madePlan is plan's plan: the command whose refusal it is checked
// against, asked of the code that command runs so that they cannot
// disagree (refusal: nil when it would go ahead), the configuration
// digest a saved plan records, and, for an apply that would move svcnat's
// rules between backends, the removal of the old set with its refusal.
type madePlan struct {
	op      engine.Op
	plan    *planner.Plan
	refusal error
	digest  string

	removal        *planner.Plan
	removalRefusal error
}

// makePlan makes plan's plan: of the configuration, or with -destroy of
// what destroy would remove. An explicit --backend while svcnat's rules
// are in another backend previews the migration apply --backend would
// perform (both plans); only a plan to save (-out) is refused then, a
// saved plan being one backend's.
func makePlan(c *ucli.Context, g Globals) (madePlan, error) {
	if c.Bool("destroy") {
		op, p, refusal, digest, err := destroyPlan(c, g)
		return madePlan{op: op, plan: p, refusal: refusal, digest: digest}, err
	}
	mp := madePlan{op: engine.OpApply}
	cfg, node, e, err := openConfigured(c, g, c.String("out") == "")
	if err != nil {
		return mp, err
	}
	mp.digest = engine.ConfigDigest(cfg)
	if from := e.Detection.From; from != nil {
		mp.plan, mp.removal, mp.refusal, mp.removalRefusal, err = e.PlanMigration(cfg, node, from)
		return mp, err
	}
	if mp.plan, err = e.Plan(cfg, node); err != nil {
		return mp, err
	}
	mp.refusal, err = e.ApplyRefusal(mp.plan)
	return mp, err
}

// destroyPlan is plan -destroy: the chains of the prefix destroy would
// take (the recorded one, so that it works with a broken or missing
// configuration; against a dump, which is another host, the
// configuration's), refused as destroy refuses. Its saved plan records no
// configuration, as destroy records none.
func destroyPlan(c *ucli.Context, g Globals) (engine.Op, *planner.Plan, error, string, error) {
	var prefix string
	var err error
	if g.SaveFile != "" {
		var cfg *config.Config
		if cfg, err = loadConfig(c, g); err == nil {
			prefix = cfg.Settings.ChainPrefix
		}
	} else {
		prefix, err = ownedPrefix(c, g)
	}
	if err != nil {
		return engine.OpDestroy, nil, nil, "", err
	}
	e, err := openEngine(c, g, prefix)
	if err != nil {
		return engine.OpDestroy, nil, nil, "", err
	}
	p, err := e.DestroyPlan(prefix)
	if err != nil {
		return engine.OpDestroy, nil, nil, "", err
	}
	refusal, err := e.DestroyRefusal(p)
	return engine.OpDestroy, p, refusal, "", err
}
