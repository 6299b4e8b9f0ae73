package cli

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

func renderCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "render",
		Usage: "print the desired rules as the backend's input: iptables-restore payloads, or with --backend nftables an nft -f script (needs no root and no iptables or nft)",
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
			node, err := g.nodeName(cfg.Settings.Node)
			if err != nil {
				return err
			}
			// No kernel: --random-fully is the flag's, and the addresses
			// are the host's (or --local-address's), not a dump's.
			h := engine.RenderHost(g.hostOptions(cfg.Settings.ChainPrefix))
			res, err := h.Render(cfg, engine.RenderFor{Node: node, NoRandomFully: !c.Bool("random-fully")})
			if err != nil {
				return err
			}
			for _, f := range backend.Families {
				if rs, ok := res.Rulesets[f]; ok {
					if err := h.Pure().WriteInput(c.App.Writer, rs, res.Options.Node); err != nil {
						return err
					}
				}
			}
			return nil
		},
		ArgsUsage: "[FILE|DIR]",
		Before:    configArg,
	}
}
