// Command nftshape writes svcnat's nftables table for internal/bench's
// configuration as nft -f input, for measuring table shapes against
// nft (see scripts/nftshape/README.md).
package main

import (
	"flag"
	"fmt"
	"os"

	"sigs.k8s.io/knftables"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
)

func main() {
	n := flag.Int("n", 10000, "services")
	e := flag.Int("e", 5, "endpoints per service")
	change := flag.Int("change", -1, "add one endpoint to this service (bench.Change)")
	flag.Parse()
	spec := bench.Spec{Services: *n, Endpoints: *e}
	files := bench.Files(spec)
	if *change >= 0 {
		name, body := bench.Change(spec, *change)
		files[name] = body
	}
	srcs := map[string][]byte{}
	for name, body := range files {
		srcs[name] = []byte(body)
	}
	cfg, diags := config.Parse(srcs)
	if diags.HasErrors() {
		fmt.Fprintln(os.Stderr, diags)
		os.Exit(1)
	}
	fake := knftables.NewFake(knftables.IPv4Family, render.DefaultTable)
	tx := fake.NewTransaction()
	opts := render.Options{}
	opts.Node = bench.Node
	if _, err := render.RenderConfig(tx, cfg, backend.IPv4, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(tx.String())
}
