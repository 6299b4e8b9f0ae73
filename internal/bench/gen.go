// Package bench generates large svcnat configurations for benchmarks: N
// services with E endpoints each, written as one file per namespace. The
// output depends only on its parameters, so runs compare.
package bench

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// PerFile is how many services one generated file (one namespace) holds.
const PerFile = 200

// Spec says what to generate.
type Spec struct {
	Services  int // N
	Endpoints int // E per service
}

// Kind is the mix of service features, decided by the service's index:
// every fifth service is a NodePort (a fifth of those with external
// traffic policy Local), every seventh has ClientIP affinity, and half the
// endpoints are on this node ("node1").
func kind(i int) (nodePort, local, affinity bool) {
	return i%5 == 0, i%25 == 0, i%7 == 3
}

// Node is the node name the generated configurations are rendered for.
const Node = "node1"

// Files returns the configuration as file name → HCL, in namespace order.
func Files(s Spec) map[string]string {
	out := map[string]string{}
	var b strings.Builder
	flush := func(ns int) {
		if b.Len() > 0 {
			out[fmt.Sprintf("ns%03d.hcl", ns)] = b.String()
			b.Reset()
		}
	}
	// Wider than the default range: 30,000 services have 6,000 node ports.
	b.WriteString("settings {\n  cluster_cidrs   = [\"10.64.0.0/10\"]\n  node_port_range = \"30000-39999\"\n}\n\n")
	for i := 0; i < s.Services; i++ {
		if i > 0 && i%PerFile == 0 {
			flush(i/PerFile - 1)
		}
		writeService(&b, s, i)
	}
	flush((s.Services - 1) / PerFile)
	return out
}

func writeService(b *strings.Builder, s Spec, i int) {
	nodePort, local, affinity := kind(i)
	fmt.Fprintf(b, "service \"ns%03d/svc%d\" {\n", i/PerFile, i)
	if nodePort {
		b.WriteString("  type = \"NodePort\"\n")
	}
	fmt.Fprintf(b, "  cluster_ips = [\"%s\"]\n", addr(netip.MustParseAddr("10.96.0.0"), i+1))
	if local {
		b.WriteString("  external_traffic_policy = \"Local\"\n")
	}
	if affinity {
		b.WriteString("  session_affinity = \"ClientIP\"\n")
	}
	b.WriteString("  port {\n    port        = 80\n    target_port = 8080\n")
	if nodePort {
		fmt.Fprintf(b, "    node_port   = %d\n", 30000+i/5)
	}
	b.WriteString("  }\n")
	for e := 0; e < s.Endpoints; e++ {
		node := "node2"
		if e%2 == 0 {
			node = Node
		}
		fmt.Fprintf(b, "  endpoint {\n    address = \"%s\"\n    node    = \"%s\"\n  }\n",
			addr(netip.MustParseAddr("10.64.0.0"), i*s.Endpoints+e+1), node)
	}
	b.WriteString("}\n\n")
}

// addr is base + n, as an IPv4 address.
func addr(base netip.Addr, n int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Write writes the configuration into dir, which it creates.
func Write(dir string, s Spec) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, body := range Files(s) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Change returns the configuration with one endpoint added to service i:
// the file it changes and that file's new content.
func Change(s Spec, i int) (name, body string) {
	files := Files(s)
	name = fmt.Sprintf("ns%03d.hcl", i/PerFile)
	marker := fmt.Sprintf("service \"ns%03d/svc%d\" {\n", i/PerFile, i)
	at := strings.Index(files[name], marker)
	end := at + strings.Index(files[name][at:], "\n}\n")
	extra := fmt.Sprintf("  endpoint {\n    address = \"%s\"\n    node    = \"node2\"\n  }\n", addr(netip.MustParseAddr("10.127.0.0"), i+1))
	return name, files[name][:end+1] + extra + files[name][end+1:]
}
