package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// twoGenerations applies web, then web and dns, and returns the rules of
// the second.
func (h *testHost) twoGenerations(t *testing.T) string {
	t.Helper()
	h.mustApply(t, parse(t, web))
	h.mustApply(t, parse(t, web, dns))
	return h.text(t)
}

// unchanged checks that a refused run changed neither the rules nor the
// record.
func (h *testHost) unchanged(t *testing.T, rules string, gen int64) {
	t.Helper()
	if h.text(t) != rules {
		t.Fatalf("the rules changed:\n%s", h.text(t))
	}
	if st := h.state(t); st.Generation != gen {
		t.Fatalf("generation %d recorded, want %d", st.Generation, gen)
	}
}

// A generation whose files are gone is no generation without rules: a
// rollback to it is refused, naming the file, and changes nothing (it
// used to remove every owned chain and record that as a success).
func TestRollbackToAMissingGeneration(t *testing.T) {
	h := newHost(t)
	rules := h.twoGenerations(t)
	if err := os.RemoveAll(filepath.Join(h.e.StateDir, "generations")); err != nil {
		t.Fatal(err)
	}
	_, err := h.e.Rollback(context.Background(), "SVCNAT")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(h.e.StateDir, "generations", "1.ipv4.rules")) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("rollback to a missing generation: %v", err)
	}
	h.unchanged(t, rules, 2)
}

// One family's file missing is as bad as all of them.
func TestRollbackToAGenerationMissingAFamily(t *testing.T) {
	h := newHost(t)
	rules := h.twoGenerations(t)
	if err := os.Remove(filepath.Join(h.e.StateDir, "generations", "1.ipv6.rules")); err != nil {
		t.Fatal(err)
	}
	_, err := h.e.Rollback(context.Background(), "SVCNAT")
	if err == nil || !strings.Contains(err.Error(), "1.ipv6.rules") {
		t.Fatalf("rollback to a generation without its IPv6 file: %v", err)
	}
	h.unchanged(t, rules, 2)
}

// A generation file that is not what was recorded (its digest differs) is
// refused too: a rule added to it would be applied by root.
func TestRollbackToACorruptGeneration(t *testing.T) {
	h := newHost(t)
	rules := h.twoGenerations(t)
	p := filepath.Join(h.e.StateDir, "generations", "1.ipv4.rules")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	spoilt := strings.Replace(string(b), "10.64.1.3", "10.64.1.9", 1)
	if spoilt == string(b) {
		t.Fatalf("generation 1 has no endpoint 10.64.1.3:\n%s", b)
	}
	if err := os.WriteFile(p, []byte(spoilt), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = h.e.Rollback(context.Background(), "SVCNAT")
	if err == nil || !strings.Contains(err.Error(), "digest") || !strings.Contains(err.Error(), "generation 1") {
		t.Fatalf("rollback to a corrupt generation: %v", err)
	}
	h.unchanged(t, rules, 2)
}

// A watcher whose previous generation is gone does not revert to nothing:
// it fails, tries again, and gives up saying how often it tried and
// why; the rules stay, and so does the pending apply, for svcnat confirm.
func TestWatcherWithThePreviousGenerationMissing(t *testing.T) {
	retry := watchRetry
	watchRetry = time.Millisecond
	t.Cleanup(func() { watchRetry = retry })
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	// The file goes once the pending apply is in (before, the apply itself
	// would be refused: generation 1's chains would no longer be provably
	// svcnat's), well before the deadline.
	w := h.pending(t, time.Second)
	res := h.mustApply(t, parse(t, web, dns))
	if err := os.Remove(filepath.Join(h.e.StateDir, "generations", "1.ipv4.rules")); err != nil {
		t.Fatal(err)
	}
	rules := h.text(t)
	r := w.result(t, 0)
	if r.err == nil || r.res != nil || !strings.Contains(r.err.Error(), "1.ipv4.rules") || !strings.Contains(r.err.Error(), "10 times") {
		t.Fatalf("watch: %v, %+v", r.err, r.res)
	}
	h.unchanged(t, rules, 2)
	if st := h.state(t); st.Pending == nil || st.Pending.ID != res.Pending.ID {
		t.Fatalf("pending %+v after the watcher gave up", st.Pending)
	}
	if _, err := h.e.Confirm(context.Background(), res.Pending.ID); err != nil {
		t.Fatalf("confirm after the watcher gave up: %v", err)
	}
}

// A daemon's repair of the recorded rules reads the generation as a
// rollback does: a missing file is an error, not an order to remove every
// chain.
func TestRepairOfAMissingGeneration(t *testing.T) {
	h := newHost(t)
	rules := h.twoGenerations(t)
	if err := os.Remove(filepath.Join(h.e.StateDir, "generations", "2.ipv4.rules")); err != nil {
		t.Fatal(err)
	}
	_, err := h.e.RepairRecorded(context.Background(), "SVCNAT")
	if err == nil || !strings.Contains(err.Error(), "2.ipv4.rules") {
		t.Fatalf("repair with the current generation's file gone: %v", err)
	}
	h.unchanged(t, rules, 2)
}

// A generation the state records as another backend's, one svcnat does not
// have (a state directory edited, or written by a later svcnat), is
// refused, not read as this backend's rules.
func TestRollbackToAGenerationOfAnUnknownBackend(t *testing.T) {
	h := newHost(t)
	rules := h.twoGenerations(t)
	p := filepath.Join(h.e.StateDir, "state.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.ReplaceAll(string(b), `"backend": "iptables-nft"`, `"backend": "ebpf"`)
	if edited == string(b) {
		t.Fatalf("state.json names no nft backend:\n%s", b)
	}
	if err := os.WriteFile(p, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = h.e.Rollback(context.Background(), "SVCNAT")
	if err == nil || !strings.Contains(err.Error(), `generation 1 was recorded by the "ebpf" backend, which this svcnat does not have`) {
		t.Fatalf("rollback to another backend's generation: %v", err)
	}
	h.unchanged(t, rules, 2)
}
