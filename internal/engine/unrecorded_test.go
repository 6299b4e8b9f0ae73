package engine

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/svcnat/svcnat/internal/state"
)

// An apply that committed its rules but could not record them leaves an
// empty plan that Unrecorded reports, until committing that plan records
// the rules as the next generation.
func TestUnrecordedAfterAFailedRecord(t *testing.T) {
	h := newHost(t)
	cfg := parse(t, web)
	p, err := h.e.Plan(cfg, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if behind, err := h.e.Unrecorded(p); err != nil || !behind {
		t.Fatalf("before any apply, a plan that wants rules: %v %v", behind, err)
	}
	var failed atomic.Int32
	commit := commitState
	commitState = func(d *state.Dir, st *state.State, gens map[string]io.WriterTo) error {
		if failed.CompareAndSwap(0, 1) {
			return fmt.Errorf("writing generation: %w", errNoSpace)
		}
		return commit(d, st, gens)
	}
	t.Cleanup(func() { commitState = commit })
	if _, err := h.e.Apply(context.Background(), cfg, "n1"); err == nil {
		t.Fatal("the apply whose record fails succeeded")
	}
	p, err = h.e.Plan(cfg, "n1")
	if err != nil || !p.Empty() {
		t.Fatalf("plan after the unrecorded apply: %v %+v", err, p)
	}
	if behind, err := h.e.Unrecorded(p); err != nil || !behind {
		t.Fatalf("the unrecorded rules: %v %v", behind, err)
	}
	res, err := h.e.ApplySaved(context.Background(), p, ConfigDigest(cfg))
	if err != nil || !res.Repaired || res.Generation != 1 {
		t.Fatalf("recording them: %v %+v", err, res)
	}
	if behind, err := h.e.Unrecorded(p); err != nil || behind {
		t.Fatalf("once recorded: %v %v", behind, err)
	}
}
