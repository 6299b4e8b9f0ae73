package applier

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/config"
	"github.com/svcnat/svcnat/internal/testns"
	"github.com/svcnat/svcnat/iptables"
	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/render"
	"github.com/svcnat/svcnat/rules"
)

// bigConfig is n ClusterIP services with two endpoints each.
func bigConfig(tb testing.TB, n int) *config.Config {
	tb.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "service \"ns%d/svc%d\" {\n  cluster_ips = [\"10.%d.%d.%d\"]\n  port {\n    port = 80\n  }\n", i/100, i, 32+i/65536, (i/256)%256, i%256)
		for e := 1; e <= 2; e++ {
			fmt.Fprintf(&b, "  endpoint {\n    address = \"10.%d.%d.%d\"\n  }\n", 64+i/32768, (i/128)%256, (i%128)*2+e-1)
		}
		b.WriteString("}\n")
	}
	cfg, diags := config.Parse(map[string][]byte{"big.hcl": []byte(b.String())})
	if diags.HasErrors() {
		tb.Fatal(diags)
	}
	return cfg
}

func renderBig(tb testing.TB, n int) map[rules.Family]*rules.Ruleset {
	res, err := render.Render(bigConfig(tb, n), render.Options{Node: "n1", RandomFully: true})
	if err != nil {
		tb.Fatal(err)
	}
	return res.Rulesets
}

func BenchmarkRender10k(b *testing.B) {
	cfg := bigConfig(b, 10000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := render.Render(cfg, render.Options{Node: "n1"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlan10kNoChange(b *testing.B) {
	desired := renderBig(b, 10000)
	live := map[rules.Family]*rules.Ruleset{rules.IPv4: desired[rules.IPv4].Clone()}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p := planner.New("SVCNAT", "nft", desired, live); !p.Empty() {
			b.Fatal("plan not empty")
		}
	}
}

func BenchmarkParseSave10k(b *testing.B) {
	text := renderBig(b, 10000)[rules.IPv4].Text()
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := rules.ParseSave(rules.IPv4, strings.NewReader(text)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyNFT measures a cold apply of n services into a fresh
// namespace on the nf_tables backend, staged in batches of 1000 chains (as
// apply does) and as one transaction, to show why large applies are staged.
func BenchmarkApplyNFT(b *testing.B) {
	for _, n := range []int{1000, 3000, 10000} {
		for _, batch := range []int{DefaultBatch, 1 << 30} {
			name := fmt.Sprintf("services=%d/staged", n)
			if batch != DefaultBatch {
				name = fmt.Sprintf("services=%d/one-transaction", n)
			}
			b.Run(name, func(b *testing.B) {
				desired := renderBig(b, n)
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					ns := testns.New(b)
					ipt, err := iptables.New(iptables.Options{Backend: iptables.NFT, NetNS: ns.Name, Wait: 60e9})
					if err != nil {
						b.Fatal(err)
					}
					live, err := ipt.Save(rules.IPv4)
					if err != nil {
						b.Fatal(err)
					}
					snapshot := map[rules.Family]*rules.Ruleset{rules.IPv4: live}
					p := planner.New("SVCNAT", "nft", desired, snapshot)
					b.StartTimer()
					if err := Apply(context.Background(), ipt, p, snapshot, Options{Batch: batch}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
