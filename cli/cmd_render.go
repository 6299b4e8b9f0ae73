package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/rules"
)

func renderCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "render",
		Usage: "print the desired rules as iptables-restore payloads (needs no root and no iptables)",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "random-fully", Value: true, Usage: "render MASQUERADE with --random-fully (iptables >= 1.6.2)"},
		},
		Action: func(c *ucli.Context) error {
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(c, g)
			if err != nil {
				return err
			}
			opts, err := renderOptions(g, cfg, nil)
			if err != nil {
				return err
			}
			opts.RandomFully = c.Bool("random-fully")
			out, err := renderWith(cfg, opts)
			if err != nil {
				return err
			}
			w := c.App.Writer
			for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
				rs, ok := out[f]
				if !ok {
					continue
				}
				tool := "iptables-restore"
				if f == rules.IPv6 {
					tool = "ip6tables-restore"
				}
				fmt.Fprintf(w, "# %s: %d rules, for %s --noflush (node %s)\n", f, rs.RuleCount(), tool, opts.Node)
				if err := rs.WriteRestore(w); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
