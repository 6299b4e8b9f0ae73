package engine

import (
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// pure is the backend's pure part: rendering a configuration, reading back
// recorded rules, and what its rules mean (for UDP conntrack cleanup, a
// saved plan's check and show's inventory). It is chosen where the kernel
// is (package kernel), not by the engine.
func pure() backend.Pure { return kernel.Pure() }
