package describe

import "github.com/svcnat/svcnat/internal/kernel/backend"

func (Describer) Inventory(prefix string, live map[backend.Family]*backend.Ruleset) *backend.Inventory { return nil }
func (Describer) StaleUDP(p backend.Planned) []backend.StaleFlow { return nil }
func (Describer) CheckDesired(prefix string, desired map[backend.Family]*backend.Ruleset) error { return nil }
