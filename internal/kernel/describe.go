package kernel

import (
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/describe"
)

// Describer is the backend's backend.Describer, for the engine's
// conntrack cleanup and saved-plan check and for the views. Every backend
// svcnat has writes iptables rules, so there is one.
func Describer() backend.Describer { return describe.Describer{} }
