// Command svcnat-bench measures svcnat at scale (make bench): see
// docs/PERFORMANCE.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/svcnat/svcnat/internal/bench"
)

func main() {
	n := flag.Int("n", 10000, "services")
	e := flag.Int("e", 5, "endpoints per service")
	gen := flag.String("gen", "", "only write the configuration into this directory")
	change := flag.Int("change", -1, "with -gen: add one endpoint to this service")
	flag.Parse()
	if *gen != "" {
		s := bench.Spec{Services: *n, Endpoints: *e}
		if err := bench.Write(*gen, s); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if *change >= 0 {
			name, body := bench.Change(s, *change)
			if err := os.WriteFile(filepath.Join(*gen, name), []byte(body), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
}
