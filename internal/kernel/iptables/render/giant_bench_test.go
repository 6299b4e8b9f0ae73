package render_test

import (
	"fmt"
	"testing"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
	"github.com/svcnat/svcnat/internal/planner"
)

// BenchmarkGiantService loads, renders and plans one service with many
// endpoints (bench.Files with one service: a NodePort with external
// traffic policy Local, half its endpoints on this node), up to
// config.MaxServiceEndpoints. svcnat's own cost must grow linearly with
// the endpoints: compare ns/op across the sizes. The kernel's cost, which
// does not (docs/PERFORMANCE.md, "One large service"), is not measured
// here.
func BenchmarkGiantService(b *testing.B) {
	for _, n := range []int{1000, config.MaxServiceEndpoints} {
		srcs := map[string][]byte{}
		for name, body := range bench.Files(bench.Spec{Services: 1, Endpoints: n}) {
			srcs[name] = []byte(body)
		}
		cfg, diags := config.Parse(srcs)
		if diags.HasErrors() {
			b.Fatal(diags)
		}
		res, err := render.Render(cfg, render.Options{Node: bench.Node, RandomFully: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("load/endpoints=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, diags := config.Parse(srcs); diags.HasErrors() {
					b.Fatal(diags)
				}
			}
		})
		b.Run(fmt.Sprintf("render/endpoints=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := render.Render(cfg, render.Options{Node: bench.Node, RandomFully: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("plan-create/endpoints=%d", n), func(b *testing.B) {
			empty := map[backend.Family]*backend.Ruleset{}
			for i := 0; i < b.N; i++ {
				if p := planner.New("SVCNAT", "nft", res.Rulesets, empty); p.Empty() {
					b.Fatal("empty plan")
				}
			}
		})
		b.Run(fmt.Sprintf("plan-nochange/endpoints=%d", n), func(b *testing.B) {
			live := map[backend.Family]*backend.Ruleset{backend.IPv4: res.Rulesets[backend.IPv4].Clone()}
			for i := 0; i < b.N; i++ {
				if p := planner.New("SVCNAT", "nft", res.Rulesets, live); !p.Empty() {
					b.Fatal("plan not empty")
				}
			}
		})
	}
}
