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
// of each (first-us, last-us), their difference (walk-us) and their ratio
// (last/first). The nftables backend finds a service in one map lookup
// (service-ips) instead of a walk: its goal, last within 1.1 x first, is
// logged met or not (medians of 20 x b.N connections each). make bench
// runs it; docs/PERFORMANCE.md records it.
//
// The lab and the apply are each backend's benchmark, which runs once
// because it has a sub-benchmark (connect): the timed loop alone is run
// again with a larger b.N, not the setup of 10,000 services.
func BenchmarkServiceChainLatency(b *testing.B) {
	const services = 10000
	for _, be := range []string{"iptables-nft", "iptables-legacy", "nftables"} {
		b.Run(be, func(b *testing.B) {
			lab := netlab.New(b, netlab.Options{Backends: 1, UDPPorts: []int{}})
			sv := NewSvcnat(b, lab.Node.Name, latencyConfig(b, services, lab.Backends[0].IP4.String()), be)
			sv.MustRun(b, 0, "apply", "-auto-approve")
			first, last := clusterIP(0), clusterIP(services-1)
			b.Run("connect", func(b *testing.B) {
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
				ratio := float64(ml) / float64(mf)
				b.ReportMetric(float64(mf.Microseconds()), "first-us")
				b.ReportMetric(float64(ml.Microseconds()), "last-us")
				b.ReportMetric(float64((ml - mf).Microseconds()), "walk-us")
				b.ReportMetric(ratio, "last/first")
				if be == "nftables" {
					// Logged by every round of b.N; the last line is the
					// reported one's.
					verdict := "met"
					if ratio > 1.1 {
						verdict = "not met"
					}
					b.Logf("nftables: last / first = %.2f over %d connections each (goal <= 1.1): %s", ratio, len(f), verdict)
				}
			})
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
