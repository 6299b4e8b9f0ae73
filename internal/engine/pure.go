package engine

import (
	"net/netip"

	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Pure is the pure part of the host's backend: rendering a configuration,
// reading back recorded rules, and what its rules mean (for UDP conntrack
// cleanup, a saved plan's check, show's inventory and the views). It is
// chosen with the kernel (package kernel), by the kernel's name; a host
// without a kernel (render, a planned trace) gets the one --backend asks
// for, or the default backend's.
func (h *Host) Pure() backend.Pure { return kernel.Pure(h.backendName()) }

// backendName is the name of the host's backend; without a kernel, the
// one asked for, "" for auto.
func (h *Host) backendName() backend.Name {
	switch {
	case h.Kernel != nil:
		return h.Kernel.Name()
	case h.Backend == kernel.Auto:
		return ""
	}
	return h.Backend
}

// Tracer is the host's backend's tracer of rs (the planned or live rules
// of each family) on a host whose own addresses are local; prefix names
// the chains svcnat owns (see kernel.Tracer).
func (h *Host) Tracer(rs map[backend.Family]*backend.Ruleset, local []netip.Addr, prefix string) backend.Tracer {
	return kernel.Tracer(h.backendName(), rs, local, prefix)
}
