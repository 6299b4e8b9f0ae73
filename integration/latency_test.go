//go:build linux

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/integration/netlab"
)

// BenchmarkServiceChainLatency measures what kube-proxy's users complain
// about in iptables mode: SERVICES is one linear list, so a new connection
// to the service whose rule comes last walks every rule before it. It
// applies 10,000 ClusterIP services (one endpoint each, the lab's backend)
// in the node namespace, then times TCP connection setup from the client to
// the first and to the last service of the chain, and reports the median
// of each (first-us, last-us) and their difference (walk-us). make bench
// runs it; docs/PERFORMANCE.md records it.
func BenchmarkServiceChainLatency(b *testing.B) {
	const services = 10000
	for _, be := range []string{"nft", "legacy"} {
		b.Run(be, func(b *testing.B) {
			lab := netlab.New(b, netlab.Options{Backends: 1, UDPPorts: []int{}})
			sv := NewSvcnat(b, lab.Node.Name, latencyConfig(b, services, lab.Backends[0].IP4.String()), be)
			sv.MustRun(b, 0, "apply", "-auto-approve")
			first, last := clusterIP(0), clusterIP(services-1)
			connect := func(ip string) time.Duration {
				start := time.Now()
				c, err := lab.Client.DialTCP(ip + ":80")
				took := time.Since(start)
				if err != nil {
					b.Fatalf("netns %s: connecting to %s:80 through the rules: %v", lab.Client.Name, ip, err)
				}
				c.Close()
				return took
			}
			connect(first) // warm the path (ARP, routes)
			connect(last)
			var f, l []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := 0; j < 20; j++ {
					f = append(f, connect(first))
					l = append(l, connect(last))
				}
			}
			b.StopTimer()
			mf, ml := median(f), median(l)
			b.ReportMetric(float64(mf.Microseconds()), "first-us")
			b.ReportMetric(float64(ml.Microseconds()), "last-us")
			b.ReportMetric(float64((ml - mf).Microseconds()), "walk-us")
		})
	}
}

// clusterIP is the i-th service's cluster IP: 10.96.0.0/16 and on.
func clusterIP(i int) string {
	return fmt.Sprintf("10.%d.%d.%d", 96+(i+1)/65536, (i+1)/256%256, (i+1)%256)
}

// latencyConfig writes n ClusterIP services named so that they sort in
// index order (which is the order of their rules in SERVICES), each with
// the one endpoint backend.
func latencyConfig(tb testing.TB, n int, backend string) string {
	var b strings.Builder
	b.WriteString("settings {\n  node = \"node1\"\n}\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "service \"lat/svc%05d\" {\n  cluster_ips = [\"%s\"]\n  port {\n    port = 80\n  }\n  endpoint {\n    address = %q\n  }\n}\n", i, clusterIP(i), backend)
	}
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "services.hcl"), []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
