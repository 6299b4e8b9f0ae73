package reconcile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/daemon/healthcheck"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// While the configuration on disk is rejected, the daemon is not healthy
// (/healthz 503), as while it holds a reverted configuration, even though
// its passes go on and repair drift with the last good configuration; the
// health-check ports keep saying the proxy is healthy: the rules in force
// are kept. A configuration that loads makes it healthy again.
func TestRejectedConfigurationIsUnhealthyButServes(t *testing.T) {
	hc := freePort(t)
	dir := t.TempDir()
	good := lbWeb(hc, "10.64.1.2")
	if err := os.WriteFile(filepath.Join(dir, "lb.hcl"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	health := &healthcheck.Server{}
	t.Cleanup(health.Close)
	h := startLoopOn(t, t.TempDir(), dir, iptables.NewFake(), time.Hour, func(l *Loop) { l.Health = health })
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")
	if !h.loop.Healthy() || !h.loop.Serving() {
		t.Fatal("not healthy after a good pass")
	}

	h.write(t, "lb.hcl", good+"bogus = 1\n")
	at = h.logs.await(t, at, "configuration rejected; keeping the last good configuration", "lb.hcl:")
	at = h.logs.await(t, at, "no changes") // the end of that pass
	if h.loop.Healthy() || !h.loop.Serving() {
		t.Fatalf("a pass that rejected the configuration: healthy %v (want false), serving %v (want true)", h.loop.Healthy(), h.loop.Serving())
	}
	if code, body := healthAnswer(t, hc); code != 200 || body["serviceProxyHealthy"] != true {
		t.Fatalf("health check port while the configuration is rejected: %d %v", code, body)
	}
	// Drift is repaired with the last good configuration; the pass that
	// does it is no healthier.
	h.restore(t, "*nat\n-F\n-X SVCNAT-CANARY\nCOMMIT\n")
	at = h.logs.await(t, at, "applied", "drift=true", "generation=2")
	if h.loop.Healthy() || !h.loop.Serving() {
		t.Fatalf("a repair while the configuration is rejected: healthy %v (want false), serving %v (want true)", h.loop.Healthy(), h.loop.Serving())
	}

	// Every pass that reads the rejected files counts them (README
	// "Metrics"), not only the one that first rejected them.
	before := configLoadFailures(t, h.loop)
	h.reload <- struct{}{}
	at = h.logs.await(t, at, "no changes", "event=reload")
	if n := configLoadFailures(t, h.loop); before < 2 || n <= before {
		t.Fatalf("svcnat_config_load_failures_total: %v, then %v after one more pass", before, n)
	}

	h.write(t, "lb.hcl", lbWeb(hc, "10.64.1.2", "10.64.1.3"))
	h.logs.await(t, at, "applied", "event=config changed", "generation=3")
	if !h.loop.Healthy() || !h.loop.Serving() {
		t.Fatal("not healthy once the configuration loads again")
	}
}

func configLoadFailures(t *testing.T, l *Loop) float64 {
	t.Helper()
	mfs, err := l.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "svcnat_config_load_failures_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no svcnat_config_load_failures_total")
	return 0
}
