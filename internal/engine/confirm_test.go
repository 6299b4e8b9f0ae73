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

// pending makes the host's engine apply with a confirm timeout. Each
// watcher it is asked to start runs as a goroutine: an engine of its own
// on the same state directory and kernel, as the watcher process is.
func (h *testHost) pending(t *testing.T, timeout time.Duration) *watchers {
	t.Helper()
	w := &watchers{}
	h.e.LockTimeout = 5 * time.Second // a watcher takes the lock now and then
	h.e.Confirmation = &ConfirmOptions{Timeout: timeout, Watch: func(id string) (string, error) {
		e := *h.e
		e.Hooks, e.Confirmation, e.Probes = Hooks{}, nil, nil
		ch := make(chan watched, 1)
		w.ids, w.done = append(w.ids, id), append(w.done, ch)
		go func() {
			res, err := e.Watch(context.Background(), id)
			ch <- watched{res, err}
		}()
		return "test watcher", nil
	}}
	t.Cleanup(func() {
		for i := range w.done {
			w.result(t, i)
		}
	})
	return w
}

type watchers struct {
	ids  []string
	done []chan watched
	got  map[int]watched
}

type watched struct {
	res *Result
	err error
}

// result waits for the i-th watcher to end.
func (w *watchers) result(t *testing.T, i int) watched {
	t.Helper()
	if r, ok := w.got[i]; ok {
		return r
	}
	select {
	case r := <-w.done[i]:
		if w.got == nil {
			w.got = map[int]watched{}
		}
		w.got[i] = r
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("watcher %s did not end", w.ids[i])
		return watched{}
	}
}

func TestUnconfirmedApplyIsReverted(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	before := h.text(t)
	w := h.pending(t, 300*time.Millisecond)
	res := h.mustApply(t, parse(t, web, dns))
	pd := res.Pending
	if pd == nil || pd.Status != state.PendingAwaiting || pd.Generation != 2 || pd.Previous != 1 || len(w.ids) != 1 || w.ids[0] != pd.ID {
		t.Fatalf("pending %+v, watchers %v", pd, w.ids)
	}
	if h.state(t).Pending == nil || !strings.Contains(h.text(t), "kube-system/dns") {
		t.Fatal("the pending apply is not recorded, or its rules are not in")
	}
	// One pending apply at a time: everything that changes rules waits.
	during := h.text(t)
	for name, run := range map[string]func() error{
		"apply":    func() error { _, err := h.e.Apply(context.Background(), parse(t, web), "n1"); return err },
		"rollback": func() error { _, err := h.e.Rollback(context.Background(), "SVCNAT"); return err },
		"destroy":  func() error { _, err := h.e.Destroy(context.Background(), "SVCNAT"); return err },
	} {
		var pe *PendingError
		if err := run(); !errors.As(err, &pe) || pe.Pending.ID != pd.ID || !pe.Pending.Watched || !strings.Contains(err.Error(), "awaits confirmation until") {
			t.Errorf("%s while pending: %v", name, err)
		}
	}
	if h.text(t) != during {
		t.Fatal("a refused command changed the rules")
	}
	// The watcher waits for the deadline, then reverts.
	r := w.result(t, 0)
	rev := r.res
	if r.err != nil || rev == nil || rev.Reverted.ID != pd.ID || rev.Reason != "not confirmed within 300ms" {
		t.Fatalf("watch: %v, %+v", r.err, rev)
	}
	if time.Now().Before(pd.Deadline) {
		t.Fatal("reverted before the deadline")
	}
	if h.text(t) != before {
		t.Fatal("the revert did not restore generation 1's rules")
	}
	st := h.state(t)
	g2, _ := st.Info(2)
	g3, _ := st.Info(3)
	if st.Pending != nil || st.Generation != 3 || g2.Reverted != "not confirmed within 300ms" || g3.RevertOf != 2 {
		t.Fatalf("state after the revert: pending %+v, generation %d, g2 %+v, g3 %+v", st.Pending, st.Generation, g2, g3)
	}
	// A confirm that comes too late says what happened.
	_, err := h.e.Confirm(context.Background(), pd.ID)
	var np *NotPendingError
	if !errors.As(err, &np) || !errors.Is(err, ErrNothingPending) || np.Reverted == nil || np.Reverted.Generation != 2 ||
		!strings.Contains(err.Error(), "generation 2 was reverted at") {
		t.Fatalf("a late confirm: %v", err)
	}
}

func TestConfirmedApplyStays(t *testing.T) {
	h := newHost(t)
	w := h.pending(t, 200*time.Millisecond)
	res := h.mustApply(t, parse(t, web))
	after := h.text(t)
	if _, err := h.e.Confirm(context.Background(), "nope"); err == nil {
		t.Fatal("confirmed with the wrong id")
	}
	pd, err := h.e.Confirm(context.Background(), res.Pending.ID)
	if err != nil || pd.ID != res.Pending.ID {
		t.Fatalf("confirm: %v, %+v", err, pd)
	}
	if r := w.result(t, 0); r.err != nil || r.res != nil {
		t.Fatalf("the watcher of a confirmed apply: %v, %+v", r.err, r.res)
	}
	if h.text(t) != after || h.state(t).Pending != nil {
		t.Fatal("a confirmed apply did not stay")
	}
	if _, err := h.e.Confirm(context.Background(), ""); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("confirm with nothing pending: %v", err)
	}
}

// The watcher of an apply whose process died before its rules were
// verified (it holds the state lock until then) reverts at once; a first
// apply reverts to no rules at all.
func TestWatcherRevertsAnApplyThatStopped(t *testing.T) {
	h := newHost(t)
	before := h.text(t)
	w := h.pending(t, time.Hour)
	// Stop the apply in the middle, as a SIGKILL would: the watcher was
	// started, the rules are half in, nothing was recorded.
	h.e.Hooks.Step = func(s Step) {
		if s.Kind == StepVerify {
			panic("killed")
		}
	}
	func() {
		defer func() { recover() }()
		h.e.Apply(context.Background(), parse(t, web), "n1")
	}()
	if len(w.ids) != 1 {
		t.Fatalf("watchers %v", w.ids)
	}
	r := w.result(t, 0)
	if r.err != nil || r.res == nil || !strings.Contains(r.res.Reason, "stopped before its rules were verified") {
		t.Fatalf("watch: %v, %+v", r.err, r.res)
	}
	if h.text(t) != before || h.state(t).Pending != nil {
		t.Fatalf("rules after the revert of a first apply:\n%s", h.text(t))
	}
}

func TestDeclinedAtThePromptReverts(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	before := h.text(t)
	w := h.pending(t, time.Hour)
	res := h.mustApply(t, parse(t, web, dns))
	rev, err := h.e.Revert(context.Background(), res.Pending.ID, "declined at the prompt")
	if err != nil || rev.Reason != "declined at the prompt" || h.text(t) != before {
		t.Fatalf("revert: %v, %+v", err, rev)
	}
	if r := w.result(t, 0); r.err != nil || r.res != nil {
		t.Fatalf("the watcher of a reverted apply: %v, %+v", r.err, r.res)
	}
}

// A pending apply whose watcher is gone (killed) is reported as such, and
// svcnat revert still settles it.
func TestAPendingApplyWhoseWatcherIsGone(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	before := h.text(t)
	d, _ := state.Open(h.e.StateDir)
	var hold *state.Lock
	h.e.Confirmation = &ConfirmOptions{Timeout: time.Hour, Watch: func(id string) (string, error) {
		var err error
		hold, err = d.Hold(watcherLock(id))
		return "a watcher to kill", err
	}}
	res := h.mustApply(t, parse(t, web, dns))
	hold.Drop() // the watcher is killed
	_, err := h.e.Apply(context.Background(), parse(t, web), "n1")
	var pe *PendingError
	if !errors.As(err, &pe) || pe.Pending.Watched || !strings.Contains(err.Error(), "its watcher is gone") {
		t.Fatalf("apply beside a pending apply without a watcher: %v", err)
	}
	if s, err := h.e.Show("SVCNAT"); err != nil || s.Pending == nil || s.Pending.Watched {
		t.Fatalf("show beside a pending apply without a watcher: %v, %+v", err, s)
	}
	if _, err := h.e.Revert(context.Background(), res.Pending.ID, "reverted by hand"); err != nil || h.text(t) != before {
		t.Fatalf("revert: %v", err)
	}
}

// A watcher that never starts fails the apply before anything changes.
func TestAWatcherThatDoesNotStart(t *testing.T) {
	defer func(d time.Duration) { watcherStart = d }(watcherStart)
	watcherStart = 100 * time.Millisecond
	h := newHost(t)
	before := h.text(t)
	h.e.Confirmation = &ConfirmOptions{Timeout: time.Hour, Watch: func(string) (string, error) { return "nothing", nil }}
	_, err := h.e.Apply(context.Background(), parse(t, web), "n1")
	if err == nil || !strings.Contains(err.Error(), "did not start") || h.text(t) != before || h.state(t).Pending != nil {
		t.Fatalf("apply with a watcher that does not start: %v", err)
	}
}

func TestProbes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	up, _ := probe.Parse("tcp://" + ln.Addr().String())
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	down, _ := probe.Parse("tcp://" + closed.Addr().String())
	closed.Close()

	// A failing probe rolls the apply back; nothing is recorded.
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	before := h.text(t)
	h.pending(t, time.Hour)
	h.e.Probes, h.e.ProbeTimeout = []probe.Probe{up, down}, 300*time.Millisecond
	_, err = h.e.Apply(context.Background(), parse(t, web, dns), "n1")
	var pe *probe.Error
	if !errors.As(err, &pe) || pe.Probe.URL != down.URL || !strings.Contains(err.Error(), "restored") {
		t.Fatalf("apply with a failing probe: %v", err)
	}
	if st := h.state(t); h.text(t) != before || st.Generation != 1 || st.Pending != nil {
		t.Fatalf("a failed probe left generation %d, pending %+v", st.Generation, st.Pending)
	}
	// Passing probes confirm a pending apply at once.
	h.e.Probes = []probe.Probe{up}
	res := h.mustApply(t, parse(t, web, dns))
	if !res.ProbeConfirmed || res.Pending != nil || res.Probed != 1 || h.state(t).Pending != nil {
		t.Fatalf("apply with a passing probe: %+v", res)
	}
}

// After a reboot the watcher is gone: the previous generation is recorded
// as current again, and the pending apply as reverted.
func TestRebootSettlesAPendingApply(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	w := h.pending(t, time.Hour)
	h.mustApply(t, parse(t, web, dns))
	h.rebootEndsPending(t)
	// The next command that takes the lock settles it: nothing is pending.
	if _, err := h.e.Confirm(context.Background(), ""); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("confirm after a reboot: %v", err)
	}
	st := h.state(t)
	g2, _ := st.Info(2)
	g1, _ := st.Info(1)
	g3, _ := st.Info(3)
	if st.Generation != 3 || g3.RulesDigest != g1.RulesDigest || !strings.Contains(g2.Reverted, "rebooted") {
		t.Fatalf("state after the reboot: generation %d, g1 %+v, g2 %+v, g3 %+v", st.Generation, g1, g2, g3)
	}
	if r := w.result(t, 0); r.err != nil || r.res != nil {
		t.Fatalf("the watcher after a reboot: %v, %+v", r.err, r.res)
	}
}
