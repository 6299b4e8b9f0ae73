package applier

import (
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/planner"
)

// The Go benchmarks of the pure steps, at 10,000 services with 5
// endpoints each (internal/bench), or make bench's N and E
// (bench.FromEnv). make bench also runs svcnat-bench, which
// measures whole commands on the real backends.

func benchConfig(tb testing.TB) *config.Config {
	tb.Helper()
	srcs := map[string][]byte{}
	for n, b := range bench.Files(bench.FromEnv(tb)) {
		srcs[n] = []byte(b)
	}
	cfg, diags := config.Parse(srcs)
	if diags.HasErrors() {
		tb.Fatal(diags)
	}
	return cfg
}

func benchRules(tb testing.TB) map[backend.Family]*backend.Ruleset {
	res, err := render.Render(benchConfig(tb), render.Options{Node: bench.Node, RandomFully: true})
	if err != nil {
		tb.Fatal(err)
	}
	return res.Rulesets
}

func BenchmarkRender10k(b *testing.B) {
	cfg := benchConfig(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := render.Render(cfg, render.Options{Node: bench.Node}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlan10kNoChange(b *testing.B) {
	desired := benchRules(b)
	live := map[backend.Family]*backend.Ruleset{backend.IPv4: desired[backend.IPv4].Clone()}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p := planner.New("SVCNAT", "nft", desired, live); !p.Empty() {
			b.Fatal("plan not empty")
		}
	}
}

func BenchmarkParseSave10k(b *testing.B) {
	text := benchRules(b)[backend.IPv4].Text()
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := rules.ParseSave(backend.IPv4, strings.NewReader(text)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStages10k orders and batches a cold start's chains, in the
// nft backend's batches of 1000, or in four when a smaller N (make bench
// N=...) creates fewer chains than one batch holds.
func BenchmarkStages10k(b *testing.B) {
	p := planner.New("SVCNAT", "nft", benchRules(b), nil)
	k := iptables.NewFake()
	batch := min(1000, max(1, len(p.Changes)/4))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if stages, _ := Transactions(k, p, backend.IPv4, batch); len(stages) == 0 {
			b.Fatal("no stages")
		}
	}
}

// BenchmarkPayload10k writes a cold start's one transaction (legacy).
func BenchmarkPayload10k(b *testing.B) {
	p := planner.New("SVCNAT", "legacy", benchRules(b), nil)
	k := iptables.NewFake()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, tx := Transactions(k, p, backend.IPv4, backend.NoStaging)
		if k.Write(tx); tx.Lines == 0 {
			b.Fatal("empty payload")
		}
	}
}

// BenchmarkPlan10kCold plans a cold start: every chain created.
func BenchmarkPlan10kCold(b *testing.B) {
	desired := benchRules(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p := planner.New("SVCNAT", "nft", desired, nil); p.Empty() {
			b.Fatal("plan empty")
		}
	}
}
