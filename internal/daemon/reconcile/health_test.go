package reconcile

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/daemon/healthcheck"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// lbWeb is a LoadBalancer service with external traffic policy Local,
// whose health-check node port is hc, and endpoints on node n1.
func lbWeb(hc int, endpoints ...string) string {
	var b strings.Builder
	b.WriteString("settings {\n  node_port_range = \"1024-65535\"\n}\n")
	fmt.Fprintf(&b, "service \"default/lb\" {\n  type = \"LoadBalancer\"\n  cluster_ips = [\"10.32.0.62\"]\n  external_traffic_policy = \"Local\"\n  health_check_node_port = %d\n  port {\n    port = 80\n    node_port = 30080\n  }\n", hc)
	for _, e := range endpoints {
		fmt.Fprintf(&b, "  endpoint {\n    address = %q\n    node = \"n1\"\n  }\n", e)
	}
	b.WriteString("}\n")
	return b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// healthAnswer asks the health-check port as a load balancer does.
func healthAnswer(t *testing.T, port int) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatalf("health check port %d: %v", port, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("health check port %d: body %q: %v", port, b, err)
	}
	return resp.StatusCode, body
}

func withHealth(l *Loop) { l.Health = &healthcheck.Server{} }

// While the loop holds a reverted configuration, the health-check ports
// describe the rules in force (the configuration the record names, when
// the loop loaded it; the files on disk for a loop started during the
// hold), and say the proxy is healthy: its rules are kept, and a load
// balancer must not drain the node. /healthz alone says the files are not
// applied.
func TestHealthPortsWhileHeld(t *testing.T) {
	hc := freePort(t)
	dir := t.TempDir()
	first := lbWeb(hc, "10.64.1.2")
	if err := os.WriteFile(filepath.Join(dir, "lb.hcl"), []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := iptables.NewFake()
	h := startLoopOn(t, t.TempDir(), dir, fake, 50*time.Millisecond, withHealth)
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")
	if code, body := healthAnswer(t, hc); code != 200 || body["localEndpoints"] != 1.0 {
		t.Fatalf("health before the hold: %d %v", code, body)
	}
	// The reverted configuration has two local endpoints.
	moved := lbWeb(hc, "10.64.1.3", "10.64.1.4")
	_, reverted := h.applyPending(t, h.configured(t, "lb.hcl", moved), 300*time.Millisecond)
	h.write(t, "lb.hcl", moved)
	if err := <-reverted; err != nil {
		t.Fatalf("the watcher: %v", err)
	}
	at = h.logs.await(t, at, "the apply of this configuration was reverted", "generation=2")
	h.logs.await(t, at, "the apply of this configuration was reverted", "generation=2")
	if code, body := healthAnswer(t, hc); code != 200 || body["localEndpoints"] != 1.0 || body["serviceProxyHealthy"] != true {
		t.Fatalf("health while the loop holds the revert: %d %v (want the rules in force: 1 local endpoint)", code, body)
	}
	if h.loop.Healthy() {
		t.Fatal("healthy while the configuration on disk is not in force")
	}

	// A loop started during the hold never loaded the configuration in
	// force: it serves the ports of the files it reads.
	h.stop(t)
	h.loop.Health.Close()
	h2 := startLoopOn(t, h.loop.Engine.StateDir, dir, fake, 50*time.Millisecond, withHealth)
	t.Cleanup(h2.loop.Health.Close)
	h2.logs.await(t, 0, "the apply of this configuration was reverted", "event=start")
	// The hold is logged before the loop keeps the rules (and says so):
	// the answer follows within the pass.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := healthAnswer(t, hc)
		if code == 200 && body["localEndpoints"] == 2.0 && body["serviceProxyHealthy"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health of a loop started during the hold: %d %v", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
