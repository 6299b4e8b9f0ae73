package engine

import (
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// describer is the backend's reading of what its rules mean, for UDP
// conntrack cleanup, a saved plan's check and show's inventory. It is
// chosen where the kernel is (package kernel), not by the engine.
func describer() backend.Describer { return kernel.Describer() }
