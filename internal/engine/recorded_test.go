package engine

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/probe"
	"github.com/svcnat/svcnat/internal/state"
)

// An apply that stopped before it recorded a generation (killed between
// its commit and its record) is reverted by its watcher, and the record
// still names the configuration and rules whose apply was undone: a
// daemon must not apply them again.
func TestRecordedRevertOfAnApplyThatRecordedNothing(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	w := h.pending(t, time.Hour)
	cfg := parse(t, web, dns)
	h.e.Hooks.Step = func(s Step) {
		if s.Kind == StepVerify {
			panic("killed")
		}
	}
	func() {
		defer func() { recover() }()
		h.e.Apply(context.Background(), cfg, "n1")
	}()
	h.e.Hooks.Step = nil
	if r := w.result(t, 0); r.err != nil || r.res == nil {
		t.Fatalf("watch: %v, %+v", r.err, r.res)
	}
	rec, err := ReadRecorded(h.e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.RevertedConfig(ConfigDigest(cfg)) || !strings.Contains(rec.Reverted.Reverted, "stopped before its rules were verified") || rec.RevertedAt.IsZero() {
		t.Fatalf("the record of the revert does not name the reverted configuration: %+v %+v", rec, rec.Reverted)
	}
	p, err := h.e.Plan(cfg, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if !rec.RevertedRules(p) {
		t.Fatal("the record of the revert does not name the reverted rules")
	}
	// An apply by hand ends it.
	h.e.Confirmation = nil
	h.mustApply(t, cfg)
	if rec, _ := ReadRecorded(h.e.StateDir); rec.Reverted != nil {
		t.Fatalf("an apply by hand left the revert in the record: %+v", rec.Reverted)
	}
}

// An apply whose probes failed is rolled back, and the record says so,
// naming the configuration: a daemon holds it as it holds a revert.
func TestRecordedProbeFailure(t *testing.T) {
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	down, _ := probe.Parse("tcp://" + closed.Addr().String())
	closed.Close()
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	cfg := parse(t, web, dns)
	h.e.Probes, h.e.ProbeTimeout = []probe.Probe{down}, 100*time.Millisecond
	_, err := h.e.Apply(context.Background(), cfg, "n1")
	var pe *probe.Error
	if !errors.As(err, &pe) {
		t.Fatalf("apply with a failing probe: %v", err)
	}
	rec, err := ReadRecorded(h.e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.RevertedConfig(ConfigDigest(cfg)) || !strings.Contains(rec.Reverted.Reverted, "rolled back: probe "+down.URL) || rec.Generation != 1 {
		t.Fatalf("the record after a failed probe: %+v %+v", rec, rec.Reverted)
	}
	var np *NotPendingError
	if _, err := h.e.Confirm(context.Background(), ""); !errors.As(err, &np) || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("confirm after a failed probe: %v", err)
	}
}

// A state file written before state.Undone still tells the revert it
// recorded: by the marks on its generations.
func TestRecordedFromAnOlderStateFile(t *testing.T) {
	at := time.Date(2026, 12, 6, 14, 5, 31, 0, time.UTC)
	st := &state.State{Generation: 3, ConfigDigest: "sha256:old", Generations: []state.GenerationInfo{
		{Generation: 1, ConfigDigest: "sha256:old"},
		{Generation: 2, ConfigDigest: "sha256:new", Reverted: "not confirmed within 1m0s"},
		{Generation: 3, ConfigDigest: "sha256:old", RevertOf: 2, AppliedAt: at},
	}}
	r := recorded(st)
	if !r.RevertedConfig("sha256:new") || r.RevertedConfig("sha256:old") || r.Reverted.Generation != 2 || !r.RevertedAt.Equal(at) {
		t.Fatalf("recorded %+v, reverted %+v", r, r.Reverted)
	}
}
