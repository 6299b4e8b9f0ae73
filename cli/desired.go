package cli

import (
	"fmt"
	"sort"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/config"
	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/render"
	"github.com/svcnat/svcnat/rules"
	"github.com/svcnat/svcnat/state"
)

// renderOptions resolves what the renderer needs from the host: the node
// name, --random-fully support, and the local addresses node ports accept
// on when node_port_addresses is set.
func renderOptions(g Globals, cfg *config.Config, k kernel) (render.Options, error) {
	node, err := g.nodeName(cfg.Settings.Node)
	if err != nil {
		return render.Options{}, err
	}
	opts := render.Options{Node: node, RandomFully: true}
	if k != nil {
		opts.RandomFully = k.HasRandomFully()
	}
	// The host's addresses decide node_port_addresses' rules and, as
	// kube-proxy's node IP does, whether a load-balancer source range
	// admits the load-balancer IPs themselves. A plan against a saved
	// dump is about another host: only --local-address speaks for it.
	switch {
	case len(g.LocalAddresses) > 0:
		opts.LocalAddresses = g.LocalAddresses
	case g.SaveFile == "":
		addrs, err := localAddresses(g.NetNS)
		if err != nil && len(cfg.Settings.NodePortAddresses) > 0 {
			return opts, fmt.Errorf("listing local addresses for node_port_addresses: %w", err)
		}
		opts.LocalAddresses = addrs
	}
	return opts, nil
}

func desiredRules(g Globals, cfg *config.Config, k kernel) (map[rules.Family]*rules.Ruleset, error) {
	opts, err := renderOptions(g, cfg, k)
	if err != nil {
		return nil, err
	}
	return renderWith(cfg, opts)
}

// renderWith renders the configuration's rules per family.
func renderWith(cfg *config.Config, opts render.Options) (map[rules.Family]*rules.Ruleset, error) {
	res, err := render.Render(cfg, opts)
	if err != nil {
		return nil, err
	}
	return res.Rulesets, nil
}

// openConfigured prepares a command that works from the configuration
// (plan, apply): the validated configuration and the kernel holding the
// rules of its chain prefix. openOwned is its twin for the commands that
// work from what svcnat applied.
func openConfigured(c *ucli.Context, g Globals) (*config.Config, kernel, error) {
	cfg, err := loadConfig(c, g)
	if err != nil {
		return nil, nil, err
	}
	k, err := openKernel(g, cfg.Settings.ChainPrefix)
	return cfg, k, err
}

// makePlan renders the configuration and diffs it against the live rules.
func makePlan(g Globals, cfg *config.Config, k kernel) (*planner.Plan, error) {
	desired, err := desiredRules(g, cfg, k)
	if err != nil {
		return nil, err
	}
	live, err := saveLive(k, desired)
	if err != nil {
		return nil, err
	}
	return planner.New(cfg.Settings.ChainPrefix, k.BackendName(), desired, live), nil
}

// saveLive reads the live rules of IPv4, and of IPv6 when it is wanted or
// can be read: a host without ip6tables (or booted with IPv6 disabled)
// still serves IPv4-only configurations, while IPv6 chains left from an
// earlier configuration are found and removed wherever ip6tables works.
func saveLive(k kernel, desired map[rules.Family]*rules.Ruleset) (map[rules.Family]*rules.Ruleset, error) {
	live := map[rules.Family]*rules.Ruleset{}
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		_, wanted := desired[f]
		rs, _, err := k.Save(f)
		switch {
		case err != nil && f == rules.IPv6 && !wanted:
			continue
		case err != nil:
			return nil, fmt.Errorf("reading the live %s rules: %w", f, err)
		}
		live[f] = rs
	}
	return live, nil
}

// configDigest identifies the configuration a plan or generation came from.
func configDigest(cfg *config.Config) string {
	names := make([]string, 0, len(cfg.Files))
	for n := range cfg.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts [][]byte
	for _, n := range names {
		parts = append(parts, []byte(n), cfg.Files[n].Bytes)
	}
	return state.Digest(parts...)
}
