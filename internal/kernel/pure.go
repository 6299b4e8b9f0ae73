package kernel

import (
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/describe"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
)

// Pure is the backend's pure part (backend.Pure): rendering, reading back
// and describing its objects, for the engine and the views. Every backend
// svcnat has writes iptables rules, so there is one.
func Pure() backend.Pure { return iptablesPure{} }

type iptablesPure struct {
	render.Renderer
	describe.Describer
}
