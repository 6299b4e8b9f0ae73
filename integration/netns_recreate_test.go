//go:build linux

package integration

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/integration/netlab"
	"github.com/svcnat/svcnat/internal/testns"
)

// recreateConfig is a LoadBalancer service with external traffic policy
// Local, a local endpoint and health-check node port 30500.
const recreateConfig = `settings {
  node = "node1"
}

service "default/lb" {
  type                    = "LoadBalancer"
  cluster_ips             = ["10.32.0.62"]
  external_traffic_policy = "Local"
  health_check_node_port  = 30500

  port {
    port      = 80
    node_port = 30080
  }

  endpoint {
    address = "10.64.1.2"
    node    = "node1"
  }
}
`

// The --netns namespace deleted and made again under a running reconcile
// (ip netns del, ip netns add): the rules come back, and so do the
// listeners, which the kernel leaves in the deleted namespace: the daemon
// says that the namespace changed (WARN) and that its listeners are open
// again (INFO), and /metrics and the health-check node port answer in the
// new namespace, once the address they listen on is there again.
func TestReconcileFollowsARecreatedNamespace(t *testing.T) {
	ns := testns.New(t)
	const addr = "10.99.0.1" // the metrics address, which the new namespace gets again
	ns.MustExec(t, "", "ip", "addr", "add", addr+"/32", "dev", "lo")
	sv := NewSvcnat(t, ns.Name, writeConfig(t, map[string]string{"lb.hcl": recreateConfig}), "nft")
	d := startDaemon(t, sv, "--interval", "3s", "--metrics-addr", addr+":9823")
	d.await(t, time.Minute, "msg=applied", "event=start", "generation=1")
	node := netlab.NS{Name: ns.Name}
	answers := func() error {
		if _, err := node.HTTPGet("http://" + addr + ":9823/metrics"); err != nil {
			return err
		}
		if _, err := node.HTTPGet("http://" + addr + ":30500/"); err != nil {
			return err
		}
		return nil
	}
	netlab.Eventually(t, 10*time.Second, answers)

	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "del", ns.Name)
	ip("netns", "add", ns.Name)
	ip("-n", ns.Name, "link", "set", "lo", "up")

	d.await(t, 30*time.Second, "level=WARN", "msg=network namespace deleted and made again", "netns="+ns.Name)
	// The metrics address is not in the new namespace yet: the daemon
	// says so, and tries again at the next passes.
	d.await(t, 30*time.Second, "level=ERROR", "msg=reopening the listeners in the network namespace failed", "netns="+ns.Name)
	ip("-n", ns.Name, "addr", "add", addr+"/32", "dev", "lo")
	d.await(t, 30*time.Second, "level=INFO", "msg=listeners reopened in the network namespace", "netns="+ns.Name)
	netlab.Eventually(t, 30*time.Second, answers)
	netlab.Eventually(t, 30*time.Second, func() error {
		if r := sv.Run(t, "plan", "--detailed-exitcode"); r.Code != 0 {
			return fmt.Errorf("the rules are not back in the new namespace: %s", r)
		}
		return nil
	})
}
