package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
)

// BenchmarkPlanNoChange10k plans 10,000 services (bench.Files) against a
// dump of their own rules: load the configuration, render, parse the dump,
// diff. No kernel: the save itself is measured by make bench.
func BenchmarkPlanNoChange10k(b *testing.B) {
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
	dump := filepath.Join(dir, "dump")
	f, err := os.Create(dump)
	if err != nil {
		b.Fatal(err)
	}
	res.Rulesets[backend.IPv4].WriteSave(f)
	f.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cfg, diags := config.Load(dir)
		if diags.HasErrors() {
			b.Fatal(diags)
		}
		k, err := iptables.OpenDump(dump)
		if err != nil {
			b.Fatal(err)
		}
		e := &Engine{Host: Host{Kernel: k}}
		p, err := e.Plan(cfg, bench.Node)
		if err != nil || !p.Empty() {
			b.Fatalf("%v, %+v", err, p.Summary())
		}
	}
}
