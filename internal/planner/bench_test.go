package planner

import (
	"testing"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
)

// BenchmarkPlanColdStart10k makes the plan of a cold start at 10,000
// services (bench.Files): some 60,000 chains created, whose diffs the
// plan stores, and its summary.
func BenchmarkPlanColdStart10k(b *testing.B) {
	dir := b.TempDir()
	if err := bench.Write(dir, bench.FromEnv(b)); err != nil {
		b.Fatal(err)
	}
	cfg, diags := config.Load(dir)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	res, err := render.Render(cfg, render.Options{Node: bench.Node, RandomFully: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := New(cfg.Settings.ChainPrefix, "nft", res.Rulesets, nil)
		if s := p.Summary(); s.Add == 0 {
			b.Fatal("nothing to add")
		}
	}
}
