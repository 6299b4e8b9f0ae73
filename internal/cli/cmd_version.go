package cli

import (
	"encoding/json"
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/buildinfo"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/netns"
)

func versionCommand() *ucli.Command {
	return &ucli.Command{
		Name:   "version",
		Usage:  "svcnat's version and build, and the iptables it would use here (also svcnat --version)",
		Action: func(c *ucli.Context) error { return printVersion(c) },
	}
}

// versionReport is what svcnat version says, also as --json.
type versionReport struct {
	buildinfo.Info
	IPTables *iptablesReport `json:"iptables"`
}

type iptablesReport struct {
	Version string `json:"version,omitempty"`
	Backend string `json:"backend,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Error   string `json:"error,omitempty"`
}

// printVersion prints the build and, when the host can be read, the
// iptables version and backend svcnat would use, as the global flags
// name them (--backend, --netns): what a bug report needs.
func printVersion(c *ucli.Context) error {
	g, err := readGlobals(c)
	if err != nil {
		return err
	}
	// An iptables that cannot be read is part of the report; a namespace
	// that was named and cannot be entered is an error: the report would
	// be about another place than the one asked about.
	if g.NetNS != "" {
		if err := netns.Do(g.NetNS, func() error { return nil }); err != nil {
			return withHint(fmt.Errorf("--netns %s: %w", g.NetNS, err), "ip netns list shows the namespaces there are; entering one needs root")
		}
	}
	r := versionReport{Info: buildinfo.Read(), IPTables: &iptablesReport{}}
	prefix := engine.RecordedPrefix(g.StateDir)
	if prefix == "" {
		prefix = config.DefaultChainPrefix
	}
	o := g.hostOptions(prefix)
	o.Dump = "" // the host's iptables, not a dump's
	if h, err := envOf(c).OpenHost(o); err != nil {
		r.IPTables.Error = err.Error()
	} else {
		r.IPTables.Version = h.Kernel.Version()
		r.IPTables.Backend = string(h.Kernel.Name())
		r.IPTables.Reason = h.Detection.Reason
	}
	w := c.App.Writer
	if g.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "svcnat %s (%s, %s)\n", r.Version, r.Go, r.Platform)
	if r.Revision != "" {
		dirty := ""
		if r.Dirty {
			dirty = ", with uncommitted changes"
		}
		fmt.Fprintf(w, "revision %s (%s%s)\n", r.Revision, r.Time, dirty)
	}
	// The tool whose version it is: iptables, or nft for nftables.
	tool := "iptables"
	if backend.Name(r.IPTables.Backend) == kernel.NFTables {
		tool = "nft"
	}
	switch ipt := r.IPTables; {
	case ipt.Error != "":
		fmt.Fprintf(w, "iptables: not read: %s\n", ipt.Error)
	case ipt.Reason != "":
		fmt.Fprintf(w, "%s %s, %s backend (%s)\n", tool, ipt.Version, ipt.Backend, ipt.Reason)
	default:
		fmt.Fprintf(w, "%s %s, %s backend\n", tool, ipt.Version, ipt.Backend)
	}
	return nil
}
