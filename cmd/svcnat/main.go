// Command svcnat gives a plain Linux host the Service virtual IPs that
// kube-proxy gives a Kubernetes node. See README.md.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/svcnat/svcnat/internal/cli"
)

func main() {
	// SVCNAT_CPUPROFILE=FILE writes a CPU profile of the run, for
	// docs/PERFORMANCE.md's measurements (go tool pprof FILE).
	if path := os.Getenv("SVCNAT_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "svcnat: error: SVCNAT_CPUPROFILE: %v\n", err)
			os.Exit(1)
		}
		code := cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		pprof.StopCPUProfile()
		f.Close()
		os.Exit(code)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
