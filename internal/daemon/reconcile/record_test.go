package reconcile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// An apply whose rules are committed but whose generation cannot be
// recorded (a full disk; here a file where the generations directory
// goes, which root cannot write through either) leaves an empty plan
// behind it. The loop does not take that for success: it records the
// rules at every pass until it can, unhealthy and counting errors
// meanwhile, and is healthy again at generation 1 once the disk frees up.
func TestRecordRetried(t *testing.T) {
	stateDir := t.TempDir()
	blocker := filepath.Join(stateDir, "generations")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.hcl"), []byte(web), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startLoopOn(t, stateDir, dir, iptables.NewFake(), 50*time.Millisecond)
	at := h.logs.await(t, 0, "apply failed", "event=start", "the rules are applied but recording generation 1 failed")
	// Passes that find the rules in place still try to record them.
	errs := counter(t, h.loop.Metrics, "svcnat_reconcile_errors_total")
	at = h.logs.await(t, h.logs.end(), "recording the rules failed; they are in force", "event=tick", "recording generation 1 failed")
	at = h.logs.await(t, at, "recording the rules failed; they are in force", "event=tick")
	if h.loop.Healthy() {
		t.Fatal("healthy while the rules in force are not recorded")
	}
	if !h.loop.Serving() {
		t.Fatal("the health-check ports would drain the node, whose rules are in force")
	}
	if n := counter(t, h.loop.Metrics, "svcnat_reconcile_errors_total"); n <= errs {
		t.Fatalf("svcnat_reconcile_errors_total %v after failed records, was %v", n, errs)
	}
	if g := counter(t, h.loop.Metrics, "svcnat_generation"); g != 0 {
		t.Fatalf("svcnat_generation %v with nothing recorded", g)
	}
	if rec, err := engine.ReadRecorded(stateDir); err != nil || rec.Generation != 0 {
		t.Fatalf("the record: %+v %v", rec, err)
	}

	// The disk frees up.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	h.logs.await(t, at, "recorded the rules in force", "generation=1")
	h.stop(t)
	if !h.loop.Healthy() {
		t.Fatal("not healthy once the rules are recorded")
	}
	if g := counter(t, h.loop.Metrics, "svcnat_generation"); g != 1 {
		t.Fatalf("svcnat_generation %v, want 1", g)
	}
	rec, err := engine.ReadRecorded(stateDir)
	if err != nil || rec.Generation != 1 || rec.ConfigDigest == "" {
		t.Fatalf("the record: %+v %v", rec, err)
	}
}
