package cli

import (
	"os"
	"runtime/debug"

	"github.com/svcnat/svcnat/internal/config"
)

// memoryPerUnit and memoryFloor set svcnat's soft memory limit: about
// 200 MiB for 10,000 services of one port and five endpoints (60,000
// "units", a service port and each of its endpoints), the scale
// docs/PERFORMANCE.md measures, and proportionally more above it. Go's
// collector, told the limit (debug.SetMemoryLimit), works harder as the
// heap nears it instead of letting it grow to twice what is live; without
// it svcnat's peak at that scale is a third higher, for a few percent less
// time. The limit is soft: a larger heap is allowed, never an error.
const (
	memoryFloor   = 200 << 20
	memoryPerUnit = memoryFloor / 60000
)

// LimitMemory sets the soft limit for a configuration, unless the operator
// set GOMEMLIMIT: what every command and reconcile do once the
// configuration is loaded (svcnat-bench's session child too, which
// measures a session as reconcile holds it).
func LimitMemory(cfg *config.Config) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	units := 0
	for _, s := range cfg.Services {
		units += len(s.Ports) * (1 + len(s.Endpoints))
	}
	debug.SetMemoryLimit(max(memoryFloor, int64(units)*memoryPerUnit))
}
