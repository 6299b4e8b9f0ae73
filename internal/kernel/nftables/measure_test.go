package nftables

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
	"github.com/svcnat/svcnat/internal/service"
	"github.com/svcnat/svcnat/internal/testns"
)

// The benchmarks below load internal/bench's configuration (10,000
// services × 5 endpoints by default; SVCNAT_BENCH_N, SVCNAT_BENCH_E) into
// namespaces with a real nft; they need root. Run them once each:
//
//	go test -run '^$' -bench 'ColdLoad|Reads' -benchtime 1x ./internal/kernel/nftables/
//
// The numbers measured are in the doc comment of limits (nftables.go).

func benchDesired(b *testing.B) *backend.Ruleset { return benchDesiredChanged(b, -1) }

// benchDesiredChanged is benchDesired with service i given one more
// endpoint (bench.Change), none when i < 0.
func benchDesiredChanged(b *testing.B, i int) *backend.Ruleset {
	spec := bench.FromEnv(b)
	files := bench.Files(spec)
	if i >= 0 {
		name, body := bench.Change(spec, i)
		files[name] = body
	}
	srcs := map[string][]byte{}
	for name, body := range files {
		srcs[name] = []byte(body)
	}
	cfg, diags := config.Parse(srcs)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	// The renderer's own path (RenderModel), not renderDesired's: a
	// knftables Fake finds an element by a linear search, so running the
	// 50,000 endpoints map's transaction through one is quadratic.
	m := service.Build(cfg, service.Options{Node: bench.Node})
	rs, _, err := render.RenderModel(m, &cfg.Settings, backend.IPv4, render.Options{RenderOptions: backend.RenderOptions{Node: bench.Node}})
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

func benchRunner(b *testing.B) (*Runner, *testns.NS) {
	if why := testns.Available(); why != "" {
		b.Skip(why)
	}
	ns := testns.New(b)
	r, err := New(Options{NetNS: ns.Name, Prefix: testPrefix})
	if err != nil {
		b.Fatal(err)
	}
	return r, ns
}

// BenchmarkColdLoad applies the bench configuration to an empty namespace
// as one transaction and staged in batches.
func BenchmarkColdLoad(b *testing.B) {
	want := benchDesired(b)
	for _, batch := range []int{backend.NoStaging, 1000, 2000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				r, _ := benchRunner(b)
				b.StartTimer()
				apply(b, r, backend.IPv4, want, batch)
			}
		})
	}
}

// BenchmarkReads loads the bench configuration once, then times a Read of
// the whole table (text, as Read does), nft's JSON listing of it for
// comparison, ReadChain of a chain and of a map, and a one-endpoint
// change.
func BenchmarkReads(b *testing.B) {
	want := benchDesired(b)
	r, ns := benchRunner(b)
	apply(b, r, backend.IPv4, want, 2000)
	var svcChain string
	for _, c := range want.Tables[0].Chains {
		if c.Kind == backend.KindChain && len(c.Name) > 8 && c.Name[:8] == "service-" {
			svcChain = c.Name
			break
		}
	}
	timed := func(name string, fn func() error) {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				if err := fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	timed("Read", func() error { _, err := r.Read(backend.IPv4, nil); return err })
	timed("json-list-table", func() error {
		return exec.Command("ip", "netns", "exec", ns.Name, "nft", "-j", "list", "table", "ip", "svcnat").Run()
	})
	timed("json-terse-list-table", func() error {
		return exec.Command("ip", "netns", "exec", ns.Name, "nft", "-j", "-t", "list", "table", "ip", "svcnat").Run()
	})
	timed("ReadChain-service-chain", func() error { _, _, err := r.ReadChain(backend.IPv4, "svcnat", svcChain); return err })
	timed("ReadChain-services", func() error { _, _, err := r.ReadChain(backend.IPv4, "svcnat", "services"); return err })
	timed("ReadChain-service-ips-map", func() error { _, _, err := r.ReadChain(backend.IPv4, "svcnat", "service-ips"); return err })
	timed("ReadChain-endpoints-tcp-map", func() error { _, _, err := r.ReadChain(backend.IPv4, "svcnat", "endpoints-tcp"); return err })
	timed("ReadChain-cluster-ips-set", func() error { _, _, err := r.ReadChain(backend.IPv4, "svcnat", "cluster-ips"); return err })
	timed("list-chain", func() error {
		return exec.Command("ip", "netns", "exec", ns.Name, "nft", "list", "chain", "ip", "svcnat", svcChain).Run()
	})
	timed("terse-list-chain", func() error {
		return exec.Command("ip", "netns", "exec", ns.Name, "nft", "-t", "list", "chain", "ip", "svcnat", svcChain).Run()
	})
	timed("list-map-missing", func() error {
		exec.Command("ip", "netns", "exec", ns.Name, "nft", "list", "map", "ip", "svcnat", svcChain).Run()
		return nil
	})
	// A one-endpoint change (bench.Change: service 1 gains one; it is
	// chainless, so its service-ips element goes to another dispatch
	// chain, made if no port used it yet, and vip-endpoints-tcp gains an
	// element) and back, two transactions per iteration: their runs alone,
	// as apply's Read costs a Read.
	live, err := r.Read(backend.IPv4, nil)
	if err != nil {
		b.Fatal(err)
	}
	changed := benchDesiredChanged(b, 1)
	if n := len(planChanges(changed, live)); n < 2 || n > 3 {
		b.Fatalf("a one-endpoint change changes %d objects, want service-ips, vip-endpoints-tcp and at most a dispatch chain", n)
	}
	var txs []*backend.Transaction
	for _, step := range [][2]*backend.Ruleset{{changed, live}, {live, changed}} {
		_, final := r.Transactions(backend.IPv4, planChanges(step[0], step[1]), 2000)
		r.Write(final)
		txs = append(txs, final)
	}
	timed("one-chain-change-and-back", func() error {
		for _, tx := range txs {
			if err := r.Run(tx); err != nil {
				return err
			}
		}
		return nil
	})
}
