package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// hostOptions says which host the global flags name, for the chains of
// prefix.
func (g Globals) hostOptions(prefix string) engine.HostOptions {
	return engine.HostOptions{NetNS: g.NetNS, Backend: backend.Name(g.Backend), Prefix: prefix,
		Dump: g.SaveFile, LocalAddresses: g.LocalAddresses, RuntimeDir: g.RuntimeDir}
}

// openEngine opens the host the global flags name, for the chains of
// prefix, and an engine on it.
func openEngine(c *ucli.Context, g Globals, prefix string) (*engine.Engine, error) {
	return openEngineFor(c, g, prefix, false)
}

// openEngineFor is openEngine; migrate (apply from the configuration)
// opens an explicit --backend while svcnat's rules are only in another
// backend, which the host's Detection.From then holds (engine.Migrate).
func openEngineFor(c *ucli.Context, g Globals, prefix string, migrate bool) (*engine.Engine, error) {
	o := g.hostOptions(prefix)
	o.Migrate = migrate
	h, err := envOf(c).OpenHost(o)
	switch {
	case err == nil:
	case errors.Is(err, kernel.ErrBothBackends):
		return nil, withHint(err, "remove one set (svcnat destroy --backend BACKEND, naming the one to remove), then run again")
	case errors.Is(err, kernel.ErrOtherBackend) && c.Command.Name == "plan" && c.String("out") != "":
		// plan previews a migration, but a saved plan is one backend's.
		return nil, withHint(err, fmt.Sprintf("a saved plan is for one backend and cannot move svcnat's rules: drop -out to preview the move; svcnat apply --backend %s moves them in one step (it shows both plans and asks first)", g.Backend))
	case errors.Is(err, kernel.ErrOtherBackend) && c.Command.Name == "plan":
		// plan -destroy removes the set where it is.
		return nil, withHint(err, fmt.Sprintf("use --backend auto, or destroy the rules in the other backend first; svcnat plan --backend %s previews moving them, and svcnat apply --backend %s moves them in one step", g.Backend, g.Backend))
	case errors.Is(err, kernel.ErrOtherBackend):
		return nil, withHint(err, "use --backend auto, or destroy the rules in the other backend first")
	case os.Geteuid() != 0:
		return nil, withHint(err, "reading the live rules needs root; or plan against a dump with --iptables-save FILE")
	default:
		return nil, err
	}
	switch d, auto := h.Detection, backend.Name(g.Backend) == kernel.Auto; {
	case auto && d.Mixed:
		fmt.Fprintf(c.App.ErrWriter, "svcnat: warning: both iptables backends hold rules; %s\n", d.Reason)
	case !auto && len(d.OtherOwned) > 0:
		// Split brain: kernel.Open lets an explicit backend through so
		// that one set can be repaired or removed; the other stays.
		fmt.Fprintf(c.App.ErrWriter, "svcnat: warning: the %s backend also holds svcnat's chains (%s); this command works on the %s backend only\n",
			d.Other, strings.Join(d.OtherOwned, ", "), g.Backend)
	case d.LegacyTables:
		// iptables-nft's own "# Warning: iptables-legacy tables present", in svcnat's words.
		fmt.Fprintf(c.App.ErrWriter, "svcnat: warning: iptables-legacy tables are present (%s); svcnat works on the nft backend, which does not show them (iptables-legacy-save does)\n",
			plural(d.LegacyRules, "rule"))
	}
	return &engine.Engine{Host: *h, StateDir: g.StateDir, LockTimeout: c.Duration("lock-timeout"), Adopt: c.Bool("adopt")}, nil
}

// openConfigured prepares a command that works from the configuration
// (plan, apply): the validated configuration, this host's node name, and
// an engine on the host for the configuration's chain prefix (migrate:
// see openEngineFor). openOwned is
// its twin for the commands that work from what svcnat applied.
func openConfigured(c *ucli.Context, g Globals, migrate bool) (*config.Config, string, *engine.Engine, error) {
	cfg, err := loadConfig(c, g)
	if err != nil {
		return nil, "", nil, err
	}
	LimitMemory(cfg)
	node, err := g.nodeName(cfg.Settings.Node)
	if err != nil {
		return nil, "", nil, err
	}
	e, err := openEngineFor(c, g, cfg.Settings.ChainPrefix, migrate)
	return cfg, node, e, err
}

// openOwned prepares a command that works on what svcnat applied
// (rollback, destroy, show): the options, the owned prefix and an engine.
func openOwned(c *ucli.Context) (Globals, string, *engine.Engine, error) {
	g, err := readGlobals(c)
	if err != nil {
		return g, "", nil, err
	}
	prefix, err := ownedPrefix(c, g)
	if err != nil {
		return g, "", nil, err
	}
	e, err := openEngine(c, g, prefix)
	return g, prefix, e, err
}

// ownedPrefix is the chain prefix of what svcnat applied: the one the
// state directory recorded, so that rollback, destroy and show work with a
// broken or missing configuration; before any apply, the configuration's.
func ownedPrefix(c *ucli.Context, g Globals) (string, error) {
	if p := engine.RecordedPrefix(g.StateDir); p != "" {
		return p, nil
	}
	cfg, err := loadConfig(c, g)
	if err != nil {
		return "", err
	}
	return cfg.Settings.ChainPrefix, nil
}
