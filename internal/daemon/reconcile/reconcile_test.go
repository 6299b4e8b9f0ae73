package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/daemon/metrics"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

const web = `service "default/web" {
  cluster_ips = ["10.32.0.61"]
  port {
    port = 80
  }
  endpoint {
    address = "10.64.1.2"
    node    = "n1"
  }
}
`

// logs records every log line the loop writes, as "msg key=value ...".
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs(as []slog.Attr) slog.Handler {
	return &withAttrs{l, as}
}
func (l *logs) WithGroup(string) slog.Handler                 { return l }
func (l *logs) Handle(_ context.Context, r slog.Record) error { return l.handle(r, nil) }

func (l *logs) handle(r slog.Record, extra []slog.Attr) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range extra {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, b.String())
	return nil
}

// end is the number of lines logged so far: await(t, l.end(), …) waits
// for a line logged from now on.
func (l *logs) end() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

type withAttrs struct {
	l  *logs
	as []slog.Attr
}

func (w *withAttrs) Enabled(context.Context, slog.Level) bool { return true }
func (w *withAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return &withAttrs{w.l, append(append([]slog.Attr{}, w.as...), as...)}
}
func (w *withAttrs) WithGroup(string) slog.Handler                 { return w }
func (w *withAttrs) Handle(_ context.Context, r slog.Record) error { return w.l.handle(r, w.as) }

// await waits for the n-th (from 1) line that holds every part, counting
// from line from; it returns the index after it.
func (l *logs) await(t *testing.T, from int, parts ...string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l.mu.Lock()
		for i := from; i < len(l.lines); i++ {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(l.lines[i], p)
			}
			if ok {
				l.mu.Unlock()
				return i + 1
			}
		}
		all := strings.Join(l.lines, "\n")
		l.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q after line %d:\n%s", parts, from, all)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type loopHost struct {
	fake   *iptables.Fake
	config string
	logs   *logs
	loop   *Loop
	reload chan struct{}
	done   chan error
	cancel context.CancelFunc
}

func startLoop(t *testing.T, interval time.Duration, files map[string]string) *loopHost {
	t.Helper()
	dir := t.TempDir()
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return startLoopOn(t, t.TempDir(), dir, iptables.NewFake(), interval)
}

// startLoopOn starts a loop on a state directory, a configuration and a
// kernel that may have been used before.
func startLoopOn(t *testing.T, stateDir, config string, fake *iptables.Fake, interval time.Duration, setup ...func(*Loop)) *loopHost {
	t.Helper()
	h := &loopHost{fake: fake, config: config, logs: &logs{}, reload: make(chan struct{}), done: make(chan error, 1)}
	e := &engine.Engine{Host: engine.Host{Kernel: h.fake}, StateDir: stateDir, LockTimeout: 5 * time.Second}
	h.loop = &Loop{Engine: e, Config: h.config, Node: func(string) (string, error) { return "n1", nil },
		Interval: interval, CanaryEvery: 20 * time.Millisecond, Debounce: 20 * time.Millisecond,
		Reload: h.reload, Log: slog.New(h.logs), Metrics: metrics.New()}
	for _, f := range setup {
		f(h.loop)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.loop.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *loopHost) write(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(h.config, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *loopHost) stop(t *testing.T) {
	t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the loop did not stop")
	}
}

func (h *loopHost) owned(t *testing.T) string {
	t.Helper()
	rs, err := h.fake.Save(backend.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	return rs.Owned("SVCNAT").Text()
}

func (h *loopHost) restore(t *testing.T, payload string) {
	t.Helper()
	if err := h.fake.Restore(backend.IPv4, []byte(payload), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
}

// The loop applies at start, repairs a flushed table as soon as the
// canary is gone, applies an edited configuration, keeps the last good
// rules through a broken one (saying where it is broken), applies the
// repaired one, passes on a reload, and stops.
func TestLoop(t *testing.T) {
	h := startLoop(t, time.Hour, map[string]string{"web.hcl": web})
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")
	applied := h.owned(t)
	if !strings.Contains(applied, "10.64.1.2:80") {
		t.Fatalf("applied:\n%s", applied)
	}
	if m, err := h.loop.Engine.MissingCanaries("SVCNAT"); err != nil || len(m) != 0 {
		t.Fatalf("canaries after the first pass: %v %v", m, err)
	}

	// iptables -t nat -F: every nat chain emptied, the canary deleted.
	h.restore(t, "*nat\n-F\n-X SVCNAT-CANARY\nCOMMIT\n")
	at = h.logs.await(t, at, "canary chain gone", "tables=IPv4 nat")
	at = h.logs.await(t, at, "applied", "event=canary lost", "drift=true", "generation=2")
	if got := h.owned(t); got != applied {
		t.Fatalf("after the repair:\n%s\nwant:\n%s", got, applied)
	}

	h.write(t, "web.hcl", strings.Replace(web, "10.64.1.2", "10.64.1.3", 1))
	at = h.logs.await(t, at, "applied", "event=config changed", "drift=false", "generation=3")
	changed := h.owned(t)
	if !strings.Contains(changed, "10.64.1.3:80") {
		t.Fatalf("the edit was not applied:\n%s", changed)
	}

	h.write(t, "web.hcl", "service \"default/web\" {\n  cluster_ips = [\"10.32.0.61\"]\n  bogus = 1\n}\n")
	at = h.logs.await(t, at, "configuration rejected; keeping the last good configuration", "web.hcl:3:3: Unsupported argument")
	// Drift is still repaired, with the last good configuration (by the
	// canary's pass, or by one a late event of the write started).
	h.restore(t, "*nat\n-F\n-X SVCNAT-CANARY\nCOMMIT\n")
	at = h.logs.await(t, at, "applied", "drift=true", "generation=4")
	if got := h.owned(t); got != changed {
		t.Fatalf("a broken configuration changed the rules:\n%s", got)
	}

	h.write(t, "web.hcl", web)
	at = h.logs.await(t, at, "applied", "event=config changed", "generation=5")
	if got := h.owned(t); got != applied {
		t.Fatalf("the repaired configuration was not applied:\n%s", got)
	}

	h.reload <- struct{}{}
	h.logs.await(t, at, "event=reload")
	h.stop(t)
	h.logs.await(t, at, "stopping")
}

// Every tick plans: a changed owned rule comes back within one interval.
func TestTickRepairsDrift(t *testing.T) {
	h := startLoop(t, 50*time.Millisecond, map[string]string{"web.hcl": web})
	at := h.logs.await(t, 0, "applied", "generation=1")
	applied := h.owned(t)
	var svc string
	for _, l := range strings.Split(applied, "\n") {
		if strings.HasPrefix(l, ":SVCNAT-SVC-") {
			svc = strings.Fields(l[1:])[0]
		}
	}
	h.restore(t, "*nat\n-F "+svc+"\nCOMMIT\n")
	h.logs.await(t, at, "applied", "event=tick", "drift=true", "generation=2")
	if got := h.owned(t); got != applied {
		t.Fatalf("after the tick:\n%s", got)
	}
}

// A configuration that is broken from the start applies nothing, and the
// loop keeps running until it is fixed.
func TestBrokenAtStart(t *testing.T) {
	h := startLoop(t, time.Hour, map[string]string{"web.hcl": "service {"})
	at := h.logs.await(t, 0, "configuration rejected; no configuration has loaded yet", "web.hcl:1:")
	if strings.Contains(h.owned(t), "SVCNAT") || h.loop.Healthy() {
		t.Fatal("a broken configuration applied something, or the loop says it is healthy")
	}
	h.write(t, "web.hcl", web)
	h.logs.await(t, at, "applied", "generation=1")
	if !h.loop.Healthy() {
		t.Fatal("not healthy after a good pass")
	}
}
