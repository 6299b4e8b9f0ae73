package engine

import (
	"fmt"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// RenderFor says whom a configuration is rendered for.
type RenderFor struct {
	// Node is the node's name, which says which endpoints are local.
	Node string
	// NoRandomFully renders MASQUERADE without --random-fully whatever
	// the kernel supports (render --random-fully=false).
	NoRandomFully bool
}

// Rendered is a configuration rendered for a host.
type Rendered struct {
	*backend.Rendered
	// Options are the facts about the host it was rendered with.
	Options backend.RenderOptions
	// AddrErr is why the host's addresses could not be read when the
	// rules do not depend on them (with node_port_addresses they do, and
	// Render fails): the rules are rendered as if the host had none, so
	// a trace of them must say that it takes the host to have none.
	AddrErr error
}

// RenderHost is the host as the commands that render without opening
// its kernel see it (render, and trace and graph of the planned rules):
// its addresses as OpenHost finds them, and no kernel, so that
// --random-fully is taken as supported.
func RenderHost(o HostOptions) *Host {
	return &Host{Addresses: HostAddresses(o), NetNS: o.NetNS, Backend: o.Backend}
}

// Render renders cfg for this host, with the facts about the host that
// rendering depends on: the one way plan, render, trace and graph render
// a configuration, so that what they show is what apply writes.
func (h *Host) Render(cfg *config.Config, f RenderFor) (*Rendered, error) {
	opts, addrErr, err := h.renderOptions(cfg, f.Node)
	if err != nil {
		return nil, err
	}
	if f.NoRandomFully {
		opts.RandomFully = false
	}
	res, err := h.Pure().Render(cfg, opts)
	if err != nil {
		return nil, err
	}
	return &Rendered{Rendered: res, Options: opts, AddrErr: addrErr}, nil
}

// renderOptions are the facts about this host that rendering cfg for node
// depends on: --random-fully support and, when known, its addresses.
// addrErr is why the addresses could not be read when cfg does not need
// them.
func (h *Host) renderOptions(cfg *config.Config, node string) (opts backend.RenderOptions, addrErr, err error) {
	opts = backend.RenderOptions{Node: node, RandomFully: true}
	if h.Kernel != nil {
		opts.RandomFully = h.Kernel.Limits().RandomFully
	}
	if h.Addresses != nil {
		opts.LocalAddresses, addrErr = h.Addresses()
		if addrErr != nil && len(cfg.Settings.NodePortAddresses) > 0 {
			return opts, nil, fmt.Errorf("listing local addresses for node_port_addresses: %w", addrErr)
		}
	}
	return opts, addrErr, nil
}

// LiveRules reads the live rules of every family as plan reads them (of
// IPv6 only where ip6tables works), for trace and graph.
func (e *Engine) LiveRules() (map[backend.Family]*backend.Ruleset, error) {
	return liveOf(e.readLive(nil, true), nil)
}
