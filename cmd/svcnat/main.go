// Command svcnat gives a plain Linux host the Service virtual IPs that
// kube-proxy gives a Kubernetes node. See README.md.
package main

import (
	"os"

	"github.com/svcnat/svcnat/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
