package cli

import (
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v2"
)

// Globals are the options every command shares, read once from flags and
// their SVCNAT_* environment variables before any work starts.
type Globals struct {
	Config   string
	Node     string
	NetNS    string
	StateDir string
	SaveFile string
	Backend  string
	JSON     bool
	Color    bool
}

func globalFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: ".", EnvVars: []string{"SVCNAT_CONFIG"},
			Usage: "a .hcl file, or a directory whose *.hcl files are read in name order"},
		&ucli.StringFlag{Name: "node", EnvVars: []string{"SVCNAT_NODE"},
			Usage: "this host's node name, deciding which endpoints are local (default: settings.node, else the hostname)"},
		&ucli.StringFlag{Name: "netns", EnvVars: []string{"SVCNAT_NETNS"},
			Usage: "work in this named network namespace (as ip netns add makes them)"},
		&ucli.StringFlag{Name: "state-dir", Value: "/var/lib/svcnat", EnvVars: []string{"SVCNAT_STATE_DIR"},
			Usage: "where generations, backups and the lock live"},
		&ucli.StringFlag{Name: "iptables-save", EnvVars: []string{"SVCNAT_IPTABLES_SAVE"},
			Usage: "plan against this saved iptables-save dump instead of the live kernel (IPv6: FILE.v6 if present)"},
		&ucli.StringFlag{Name: "backend", Value: "auto", EnvVars: []string{"SVCNAT_BACKEND"},
			Usage: "iptables backend: auto, nft or legacy"},
		&ucli.BoolFlag{Name: "json", EnvVars: []string{"SVCNAT_JSON"}, Usage: "machine-readable output"},
		&ucli.BoolFlag{Name: "no-color", EnvVars: []string{"SVCNAT_NO_COLOR", "NO_COLOR"}, Usage: "never colour output"},
	}
}

// setIn returns the innermost context in which the flag was given (on the
// command line or by its environment variable), else c: global flags are
// declared on the app and on every command, and a command's default must
// not shadow a value given before the command name.
func setIn(c *ucli.Context, name string) *ucli.Context {
	for _, x := range c.Lineage() {
		if x.Command != nil && x.IsSet(name) || x.Command == nil && x.App != nil && x.IsSet(name) {
			return x
		}
	}
	return c
}

func readGlobals(c *ucli.Context) (Globals, error) {
	str := func(n string) string { return setIn(c, n).String(n) }
	flag := func(n string) bool { return setIn(c, n).Bool(n) }
	g := Globals{
		Config:   str("config"),
		Node:     str("node"),
		NetNS:    str("netns"),
		StateDir: str("state-dir"),
		SaveFile: str("iptables-save"),
		Backend:  str("backend"),
		JSON:     flag("json"),
		Color:    !flag("no-color") && isTerminal(c.App.Writer),
	}
	switch g.Backend {
	case "auto", "nft", "legacy":
	default:
		return g, withHint(fmt.Errorf("unknown backend %q", g.Backend), "use --backend auto, nft or legacy")
	}
	return g, nil
}

// nodeName resolves the node: --node or SVCNAT_NODE, then settings.node,
// then the hostname.
func (g Globals) nodeName(fromSettings string) string {
	if g.Node != "" {
		return g.Node
	}
	if fromSettings != "" {
		return fromSettings
	}
	h, _ := os.Hostname()
	return h
}
