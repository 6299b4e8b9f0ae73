package render_test

import (
	"fmt"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
	"github.com/svcnat/svcnat/internal/service"
)

// BenchmarkRender renders bench's configurations of 1,000 and 10,000
// services × 5 endpoints into a transaction and prints it as nft -f
// input; the cost must grow linearly with the services.
func BenchmarkRender(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		srcs := map[string][]byte{}
		for name, body := range bench.Files(bench.Spec{Services: n, Endpoints: 5}) {
			srcs[name] = []byte(body)
		}
		cfg, diags := config.Parse(srcs)
		if diags.HasErrors() {
			b.Fatal(diags)
		}
		m := service.Build(cfg, service.Options{Node: bench.Node})
		fake := knftables.NewFake(knftables.IPv4Family, render.DefaultTable)
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				tx := fake.NewTransaction()
				if _, err := render.Render(tx, m, &cfg.Settings, backend.IPv4, render.Options{}); err != nil {
					b.Fatal(err)
				}
				if tx.String() == "" {
					b.Fatal("empty transaction")
				}
			}
		})
	}
}

// BenchmarkRenderModel is what a plan pays to render: bench's 10,000
// services × 5 rendered through knftables and read into svcnat's model
// in the words nft lists (ToModel, AsListed).
func BenchmarkRenderModel(b *testing.B) {
	srcs := map[string][]byte{}
	for name, body := range bench.Files(bench.Spec{Services: 10000, Endpoints: 5}) {
		srcs[name] = []byte(body)
	}
	cfg, diags := config.Parse(srcs)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	m := service.Build(cfg, service.Options{Node: bench.Node})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := render.RenderModel(m, &cfg.Settings, backend.IPv4, render.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
