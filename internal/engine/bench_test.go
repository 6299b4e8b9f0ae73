package engine

import (
	"context"
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

// BenchmarkSessionVerdict is svcnat's own share of a health verdict in
// reconcile (make bench measures it with the kernel's): one endpoint of
// one service of bench.FromEnv's configuration taken out or put back by
// Session.Update, on each backend's fake, whose transactions and reads
// cost next to nothing. At most 2,000 services: the fakes' cold apply of
// 10,000 takes many minutes (each staged restore copies the fake's whole
// state), and svcnat's share is the same order there (see
// docs/PERFORMANCE.md).
func BenchmarkSessionVerdict(b *testing.B) {
	spec := bench.FromEnv(b)
	spec.Services = min(spec.Services, 2000)
	for _, name := range []string{"iptables-nft", "nftables"} {
		b.Run(name, func(b *testing.B) {
			cfg := benchConfig(b, spec.Services, spec.Endpoints)
			e := &Engine{Host: Host{Kernel: sessionKernels[name]()}, StateDir: b.TempDir()}
			if _, err := e.Apply(context.Background(), cfg, bench.Node); err != nil {
				b.Fatal(err)
			}
			svc := cfg.Services[len(cfg.Services)/3].Name
			checked := verdict(cfg, svc, 0, false)
			p, err := e.Plan(checked, bench.Node)
			if err != nil || !p.Empty() {
				b.Fatalf("%v, %+v", err, p.Summary())
			}
			s, err := e.NewSession(p, checked, bench.Node)
			if err != nil {
				b.Fatal(err)
			}
			down := verdict(cfg, svc, 0, true)
			b.ReportMetric(float64(spec.Services), "services")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				next := checked
				if i%2 == 0 {
					next = down
				}
				if _, err := s.Update(context.Background(), next, []string{svc}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
