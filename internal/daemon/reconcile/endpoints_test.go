package reconcile

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

const checked = `service "default/web" {
  cluster_ips = ["10.32.0.61"]
  port {
    port = 80
  }
  endpoint {
    address = "10.64.1.2"
    node    = "n1"
  }
  endpoint {
    address = "10.64.1.3"
    node    = "n1"
  }
  health_check {
    protocol = "tcp"
  }
}
`

// fakeChecker is a Checker whose findings the test sets.
type fakeChecker struct {
	mu     sync.Mutex
	view   map[health.Key]health.Status
	synced int
}

func (f *fakeChecker) Sync(cfg *config.Config) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced++
	if f.view == nil {
		f.view = map[health.Key]health.Status{}
	}
	for _, s := range cfg.Services {
		if s.HealthCheck == nil {
			continue
		}
		for _, e := range s.Endpoints {
			k := health.Key{Service: s.Name, Endpoint: e.Address}
			if _, ok := f.view[k]; !ok {
				f.view[k] = health.Status{Up: true}
			}
		}
	}
}

func (f *fakeChecker) View() map[health.Key]health.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[health.Key]health.Status{}
	for k, v := range f.view {
		out[k] = v
	}
	return out
}

func (f *fakeChecker) Run(ctx context.Context) { <-ctx.Done() }

// set records a verdict and hands it to the loop, as the checker does.
func (f *fakeChecker) set(l *Loop, k health.Key, up bool) {
	st := health.Status{Up: up, Checked: true, Since: time.Now(), Consecutive: 3, Target: k.Endpoint.String() + ":80"}
	if !up {
		st.LastError = "connection refused"
	}
	f.mu.Lock()
	f.view[k] = st
	f.mu.Unlock()
	l.Transition(k, st)
}

// A verdict takes the endpoint out of the rules and puts it back, at
// once, without counting drift; the view is recorded for the one-shot
// commands; the metrics say it.
func TestHealthVerdicts(t *testing.T) {
	fc := &fakeChecker{}
	h := startLoopOn(t, t.TempDir(), configDir(t, map[string]string{"web.hcl": checked}), iptables.NewFake(), time.Hour,
		func(l *Loop) { l.Checks = fc })
	at := h.logs.await(t, 0, "applied", "event=start")
	if rules := h.owned(t); !strings.Contains(rules, "10.64.1.3:80") {
		t.Fatalf("applied:\n%s", rules)
	}
	k := health.Key{Service: "default/web", Endpoint: netip.MustParseAddr("10.64.1.3")}
	fc.set(h.loop, k, false)
	at = h.logs.await(t, at, "endpoint down", "endpoint=10.64.1.3", "failures=3", "err=connection refused")
	// Only the service concerned, by the session; no generation.
	at = h.logs.await(t, at, "applied", "event=health", "drift=false", "services=default/web")
	if rules := h.owned(t); strings.Contains(rules, "10.64.1.3:80") || !strings.Contains(rules, "10.64.1.2:80") {
		t.Fatalf("with 10.64.1.3 down:\n%s", rules)
	}
	v, err := engine.ReadHealth(h.loop.Engine.StateDir)
	if err != nil || v == nil || v.Stale(time.Now()) || !v.Down("default/web", k.Endpoint) {
		t.Fatalf("the recorded view: %+v %v", v, err)
	}
	// show beside it: the rules differ from the generation by health,
	// which is no drift.
	st, err := h.operator().Show("SVCNAT")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Drift.Empty() || st.HealthDrift == nil || st.HealthDrift.Empty() {
		t.Fatalf("show after a verdict: drift %+v, health's %+v", st.Drift.Changes, st.HealthDrift)
	}
	// A full pass finds the rules in force: nothing to change, nothing
	// to record (the record is the configuration's; health.json says
	// why the rules differ).
	h.reload <- struct{}{}
	at = h.logs.await(t, at, "no changes", "event=reload")
	if rec, err := h.loop.Engine.Recorded(context.Background()); err != nil || rec.Generation != 1 {
		t.Fatalf("after a verdict and a full pass: generation %d (%v), want 1", rec.Generation, err)
	}
	fc.set(h.loop, k, true)
	at = h.logs.await(t, at, "endpoint up", "endpoint=10.64.1.3", "passes=3")
	h.logs.await(t, at, "applied", "event=health", "drift=false", "services=default/web")
	if rules := h.owned(t); !strings.Contains(rules, "10.64.1.3:80") {
		t.Fatalf("with 10.64.1.3 back:\n%s", rules)
	}
	text := scrapeText(t, h.loop)
	for _, want := range []string{
		`svcnat_endpoint_transitions_total{to="down"} 1`,
		`svcnat_endpoint_transitions_total{to="up"} 1`,
		`svcnat_endpoint_up{endpoint="10.64.1.3",service="default/web"} 1`,
		`svcnat_drift_detected_total 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
}

// configDir writes files into a new configuration directory.
func configDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// scrapeText is the loop's metrics in the text format.
func scrapeText(t *testing.T, l *Loop) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.prom")
	if err := l.Metrics.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// While an apply awaits confirmation a verdict changes nothing (the
// apply's watcher owns the rules); once confirmed, the next pass applies
// the files with the endpoint still down taken out.
func TestVerdictWhilePending(t *testing.T) {
	fc := &fakeChecker{}
	h := startLoopOn(t, t.TempDir(), configDir(t, map[string]string{"web.hcl": checked}), iptables.NewFake(), time.Hour,
		func(l *Loop) { l.Checks = fc })
	at := h.logs.await(t, 0, "applied", "event=start")
	more := strings.Replace(checked, "  health_check {", "  endpoint {\n    address = \"10.64.1.4\"\n    node    = \"n1\"\n  }\n  health_check {", 1)
	res, _ := h.applyPending(t, h.configured(t, "web.hcl", more), time.Hour)
	pending := h.owned(t)
	k := health.Key{Service: "default/web", Endpoint: netip.MustParseAddr("10.64.1.3")}
	fc.set(h.loop, k, false)
	at = h.logs.await(t, at, "an apply awaits confirmation", "event=health")
	if got := h.owned(t); got != pending {
		t.Fatalf("a verdict changed the rules of a pending apply:\n%s", got)
	}
	if _, err := h.operator().Confirm(context.Background(), res.Pending.ID); err != nil {
		t.Fatal(err)
	}
	h.reload <- struct{}{}
	h.logs.await(t, at, "applied", "event=reload")
	if got := h.owned(t); strings.Contains(got, "10.64.1.3:80") || strings.Contains(got, "10.64.1.4:80") || !strings.Contains(got, "10.64.1.2:80") {
		t.Fatalf("after the confirmation, with 10.64.1.3 down:\n%s", got)
	}
}

// A reconcile that stops leaves its view stale at once (the one-shot
// commands go by the files), and the next one takes the endpoints it had
// out as out of the rules in force: putting them back (checks start up)
// is health, not drift.
func TestRestartIsNoDrift(t *testing.T) {
	state, dir, fake := t.TempDir(), configDir(t, map[string]string{"web.hcl": checked}), iptables.NewFake()
	fc := &fakeChecker{}
	h := startLoopOn(t, state, dir, fake, time.Hour, func(l *Loop) { l.Checks = fc })
	at := h.logs.await(t, 0, "applied", "event=start")
	k := health.Key{Service: "default/web", Endpoint: netip.MustParseAddr("10.64.1.3")}
	fc.set(h.loop, k, false)
	h.logs.await(t, at, "applied", "event=health")
	h.stop(t)
	if v, err := engine.ReadHealth(state); err != nil || v == nil || !v.Stale(time.Now()) {
		t.Fatalf("the view of a stopped reconcile is not stale: %+v %v", v, err)
	}
	h2 := startLoopOn(t, state, dir, fake, time.Hour, func(l *Loop) { l.Checks = &fakeChecker{} })
	h2.logs.await(t, 0, "applied", "event=start", "drift=false")
	if rules := h2.owned(t); !strings.Contains(rules, "10.64.1.3:80") {
		t.Fatalf("a restarted reconcile did not put the endpoint back until its first verdict:\n%s", rules)
	}
	if text := scrapeText(t, h2.loop); !strings.Contains(text, "svcnat_drift_detected_total 0") {
		t.Fatalf("a restart counted drift:\n%s", text)
	}
}
