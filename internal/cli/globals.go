package cli

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel"
)

// Globals are the options every command shares, read once from flags and
// their SVCNAT_* environment variables before any work starts.
type Globals struct {
	Config   string
	Node     string
	NetNS    string
	StateDir string
	// RuntimeDir holds the per-namespace locks and owner records.
	RuntimeDir string
	SaveFile   string
	Backend    string
	JSON       bool
	Color      bool
	// Progress: report the progress of long work on stderr, which is a
	// terminal (and --json is off).
	Progress bool
	// LocalAddresses, when given, replace the host's own addresses.
	LocalAddresses []netip.Addr

	stderr  io.Writer // for warnings that do not stop a command
	noColor bool
}

// colorOn reports whether output to w is coloured: on a terminal, unless
// --no-color or NO_COLOR says otherwise.
func (g Globals) colorOn(w io.Writer) bool { return !g.noColor && isTerminal(w) }

func globalFlags() []ucli.Flag {
	return cmdLineSet([]ucli.Flag{
		&ucli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: ".", EnvVars: []string{"SVCNAT_CONFIG"},
			Usage: "a .hcl file, or a directory whose *.hcl files are read in name order"},
		&ucli.StringFlag{Name: "node", EnvVars: []string{"SVCNAT_NODE"},
			Usage: "this host's node name, deciding which endpoints are local (default: settings.node, else the hostname)"},
		&ucli.StringFlag{Name: "netns", EnvVars: []string{"SVCNAT_NETNS"},
			Usage: "work in this named network namespace (as ip netns add makes them)"},
		&ucli.StringFlag{Name: "state-dir", Value: "/var/lib/svcnat", EnvVars: []string{"SVCNAT_STATE_DIR"},
			Usage: "where generations and the lock live"},
		&ucli.StringFlag{Name: "runtime-dir", Value: engine.DefaultRuntimeDir, EnvVars: []string{"SVCNAT_RUNTIME_DIR"},
			Usage: "where the lock of each network namespace svcnat changes rules in, and its owner record, live (a tmpfs emptied at boot)"},
		&ucli.StringFlag{Name: "iptables-save", EnvVars: []string{"SVCNAT_IPTABLES_SAVE"},
			Usage: "plan against this saved iptables-save dump instead of the live kernel (IPv6: FILE.v6 if present)"},
		&ucli.StringFlag{Name: "backend", Value: "auto", EnvVars: []string{"SVCNAT_BACKEND"},
			Usage: "rule backend: auto, nftables, iptables-nft or iptables-legacy (old names: nft, legacy)"},
		&ucli.StringSliceFlag{Name: "local-address", EnvVars: []string{"SVCNAT_LOCAL_ADDRESS"},
			Usage: "an address of this host (repeatable), instead of reading the host's: decides node_port_addresses rules and whether load-balancer source ranges admit the node"},
		&ucli.BoolFlag{Name: "json", EnvVars: []string{"SVCNAT_JSON"}, Usage: "machine-readable output"},
		// NO_COLOR (no-color.org) counts whatever its value, so it is read
		// apart from the flag: "yes" is no bool.
		&ucli.BoolFlag{Name: "no-color", EnvVars: []string{"SVCNAT_NO_COLOR"}, Usage: "never colour output (also when NO_COLOR is set)"},
	})
}

// The global flags are declared on the app and again on every command, so
// that they are accepted before or after the command name. urfave/cli
// counts a flag as set (Context.IsSet) when its environment variable is,
// and reads the variable into every copy: the command's copy, "set" by
// SVCNAT_STATE_DIR, shadowed a --state-dir given before the command name,
// and the revert watcher, started as svcnat --state-dir DIR confirm-watch,
// could be sent to another directory by the environment it inherits.
//
// So the global flags report as set only what the command line gave
// (cmdLineString and its twins): setIn then finds the nearest command-line
// value, and the environment is what a flag holds when no command line
// gave it, as urfave/cli reads it. A flag wins over its variable wherever
// it stands.
type (
	cmdLineString      struct{ *ucli.StringFlag }
	cmdLineStringSlice struct{ *ucli.StringSliceFlag }
	cmdLineBool        struct{ *ucli.BoolFlag }
)

// IsSet is false: Context.IsSet then reports the command line alone (it
// asks the flag only about its environment variable).
func (cmdLineString) IsSet() bool      { return false }
func (cmdLineStringSlice) IsSet() bool { return false }
func (cmdLineBool) IsSet() bool        { return false }

func cmdLineSet(flags []ucli.Flag) []ucli.Flag {
	for i, f := range flags {
		switch f := f.(type) {
		case *ucli.StringFlag:
			flags[i] = cmdLineString{f}
		case *ucli.StringSliceFlag:
			flags[i] = cmdLineStringSlice{f}
		case *ucli.BoolFlag:
			flags[i] = cmdLineBool{f}
		default:
			panic(fmt.Sprintf("global flag %T: give it a command-line-only twin", f))
		}
	}
	return flags
}

// setIn returns the innermost context in which the flag was given on the
// command line, else c (whose copy of the flag holds its environment
// variable or its default): global flags are declared on the app and on
// every command, and a command's default must not shadow a value given
// before the command name.
func setIn(c *ucli.Context, name string) *ucli.Context {
	for _, x := range c.Lineage() {
		if x.IsSet(name) {
			return x
		}
	}
	return c
}

func readGlobals(c *ucli.Context) (Globals, error) {
	str := func(n string) string { return setIn(c, n).String(n) }
	flag := func(n string) bool { return setIn(c, n).Bool(n) }
	g := Globals{
		Config:     str("config"),
		Node:       str("node"),
		NetNS:      str("netns"),
		StateDir:   str("state-dir"),
		RuntimeDir: str("runtime-dir"),
		SaveFile:   str("iptables-save"),
		Backend:    str("backend"),
		JSON:       flag("json"),
		stderr:     c.App.ErrWriter,
		noColor:    flag("no-color") || os.Getenv("NO_COLOR") != "",
	}
	g.Color = g.colorOn(c.App.Writer)
	g.Progress = !g.JSON && envOf(c).terminal(c.App.ErrWriter)
	for _, a := range setIn(c, "local-address").StringSlice("local-address") {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return g, fmt.Errorf("--local-address %q is not an IP address", a)
		}
		g.LocalAddresses = append(g.LocalAddresses, ip)
	}
	name, err := kernel.ParseName(g.Backend)
	if err != nil {
		return g, withHint(err, "use --backend "+kernel.NameChoices)
	}
	g.Backend = string(name)
	return g, nil
}

// nodeName resolves the node: --node or SVCNAT_NODE, then settings.node,
// then the hostname, lower-cased as kube-proxy does. It is checked like a
// node name in the configuration: it reaches the render output.
func (g Globals) nodeName(fromSettings string) (string, error) {
	n, from := g.Node, "--node"
	switch {
	case n != "":
	case fromSettings != "":
		return fromSettings, nil // checked with the configuration
	default:
		h, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("finding the node name: %w", err)
		}
		n, from = strings.ToLower(h), "the hostname"
	}
	if !config.ValidNodeName(n) {
		return "", withHint(fmt.Errorf("node name %q from %s is not a valid node name", n, from),
			"pass --node NAME (lower-case letters, digits, '-' and '.')")
	}
	return n, nil
}
