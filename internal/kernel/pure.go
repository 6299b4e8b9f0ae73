package kernel

import (
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/describe"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
)

// Pure is the pure part (backend.Pure) of the backend called name:
// rendering, reading back and describing its objects, for the engine and
// the views. name is what a kernel, a plan or a state record says ("" where
// no kernel is open: render, a planned trace). Every backend svcnat has
// so far writes iptables rules (nft, legacy, a saved dump), so every name
// gets the iptables one; a backend with other objects adds its case here.
func Pure(name backend.Name) backend.Pure { return iptablesPure{} }

type iptablesPure struct {
	render.Renderer
	describe.Describer
}
