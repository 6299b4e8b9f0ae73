package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// refusedBoth checks that plan's ApplyRefusal is exactly the error Apply
// fails with, and that the refused Apply changed nothing.
func refusedBoth(t *testing.T, h *testHost, cfgFiles ...string) error {
	t.Helper()
	p, err := h.e.Plan(parse(t, cfgFiles...), "n1")
	if err != nil {
		t.Fatal(err)
	}
	refusal, err := h.e.ApplyRefusal(p)
	if err != nil {
		t.Fatal(err)
	}
	before, gen := h.text(t), h.state(t).Generation
	_, applied := h.e.Apply(context.Background(), parse(t, cfgFiles...), "n1")
	if refusal == nil || applied == nil || refusal.Error() != applied.Error() || fmt.Sprintf("%T", refusal) != fmt.Sprintf("%T", applied) {
		t.Fatalf("plan says apply refuses with %v (%T); apply says %v (%T)", refusal, refusal, applied, applied)
	}
	if h.text(t) != before || h.state(t).Generation != gen {
		t.Fatal("a refused apply changed something")
	}
	return refusal
}

func TestApplyRefusalIsWhatApplyRefuses(t *testing.T) {
	t.Run("nothing refused", func(t *testing.T) {
		h := newHost(t)
		h.e.StateDir = filepath.Join(h.e.StateDir, "never-applied")
		p, err := h.e.Plan(parse(t, web), "n1")
		if err != nil {
			t.Fatal(err)
		}
		if refusal, err := h.e.ApplyRefusal(p); refusal != nil || err != nil {
			t.Fatalf("a plan apply takes: %v, %v", refusal, err)
		}
		if _, err := os.Stat(h.e.StateDir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("ApplyRefusal made the state directory: %v", err)
		}
	})
	t.Run("prefix changed", func(t *testing.T) {
		h := newHost(t)
		h.mustApply(t, parse(t, web))
		var pc *PrefixChangedError
		if err := refusedBoth(t, h, "settings {\n  chain_prefix = \"KUBE\"\n}\n", web); !errors.As(err, &pc) || pc.Recorded != "SVCNAT" {
			t.Fatalf("refusal %v", err)
		}
	})
	t.Run("pending confirmation", func(t *testing.T) {
		h := newHost(t)
		h.mustApply(t, parse(t, web))
		h.pending(t, time.Hour)
		res := h.mustApply(t, parse(t, web, dns))
		h.e.Confirmation = nil
		var pe *PendingError
		if err := refusedBoth(t, h, web); !errors.As(err, &pe) || pe.Pending.ID != res.Pending.ID {
			t.Fatalf("refusal %v", err)
		}
		if _, err := h.e.Revert(context.Background(), res.Pending.ID, "test"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("blocked deletion", func(t *testing.T) {
		h := newHost(t)
		res := h.mustApply(t, parse(t, web))
		h.pinSEP(t, res, "")
		var be *BlockedError
		if err := refusedBoth(t, h, dns); !errors.As(err, &be) || len(be.Blocked) != 1 {
			t.Fatalf("refusal %v", err)
		}
	})
	// A pending apply a reboot ended is settled by the next command:
	// it does not refuse, and plan must not say it does.
	t.Run("pending apply a reboot ended", func(t *testing.T) {
		h := newHost(t)
		h.mustApply(t, parse(t, web))
		// The reboot ends the watcher too: a live one wakes every second
		// and would settle the pending apply itself, racing the check
		// below.
		ctx, stop := context.WithCancel(context.Background())
		ended := make(chan struct{})
		h.e.LockTimeout = 5 * time.Second
		h.e.Confirmation = &ConfirmOptions{Timeout: time.Hour, Watch: func(id string) (string, error) {
			e := *h.e
			e.Hooks, e.Confirmation, e.Probes = Hooks{}, nil, nil
			go func() {
				defer close(ended)
				e.Watch(ctx, id)
			}()
			return "test watcher", nil
		}}
		h.mustApply(t, parse(t, web, dns))
		h.e.Confirmation = nil
		stop()
		<-ended
		h.rebootEndsPending(t)
		p, err := h.e.Plan(parse(t, web), "n1")
		if err != nil {
			t.Fatal(err)
		}
		if refusal, err := h.e.ApplyRefusal(p); refusal != nil || err != nil {
			t.Fatalf("plan beside a pending apply a reboot ended: %v, %v", refusal, err)
		}
		if h.state(t).Pending == nil {
			t.Fatal("ApplyRefusal settled the pending apply: it must change nothing")
		}
		h.mustApply(t, parse(t, web))
	})
}

// A dump is not this host: the state directory's record says nothing of
// it, and apply cannot commit to it. Only its rules can block a plan.
func TestApplyRefusalOfADump(t *testing.T) {
	dir := t.TempDir()
	dump := filepath.Join(dir, "host.rules")
	if err := os.WriteFile(dump, []byte(foreign), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := iptables.OpenDump(dump)
	if err != nil {
		t.Fatal(err)
	}
	// A state directory that would refuse a live apply (another prefix).
	stateDir := filepath.Join(dir, "state")
	d, _ := state.Open(stateDir)
	if err := d.Save(&state.State{Generation: 1, Prefix: "KUBE"}); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Host: Host{Kernel: k}, StateDir: stateDir}
	p, err := e.Plan(parse(t, web), "n1")
	if err != nil {
		t.Fatal(err)
	}
	refusal, err := e.ApplyRefusal(p)
	if err != nil || !errors.Is(refusal, backend.ErrReadOnly) {
		t.Fatalf("refusal of a plan against a dump: %v, %v", refusal, err)
	}
	_, applied := e.Apply(context.Background(), parse(t, web), "n1")
	if applied == nil || applied.Error() != refusal.Error() {
		t.Fatalf("apply against a dump: %v, plan says %v", applied, refusal)
	}
}

// failSaves makes the first save of the state that fail picks fail, as a
// full disk would; the counter says whether it came.
func failSaves(t *testing.T, fail func(st *state.State) bool) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	save := saveState
	saveState = func(d *state.Dir, st *state.State) error {
		if fail(st) && n.CompareAndSwap(0, 1) {
			return fmt.Errorf("write %s: %w", filepath.Join(d.Path(), "state.json"), errNoSpace)
		}
		return save(d, st)
	}
	t.Cleanup(func() { saveState = save })
	return &n
}

var errNoSpace = errors.New("no space left on device")

// An apply whose pending record cannot be written changes nothing, and
// leaves no pending record that would refuse every later command.
func TestArmFailingToSaveLeavesNothingPending(t *testing.T) {
	for _, which := range []string{"the pending record", "the watcher"} {
		t.Run(which, func(t *testing.T) {
			h := newHost(t)
			h.mustApply(t, parse(t, web))
			before := h.text(t)
			w := h.pending(t, time.Hour)
			failed := failSaves(t, func(st *state.State) bool {
				if which == "the pending record" {
					return st.Pending != nil
				}
				return st.Pending != nil && st.Pending.Watcher != "" // the save after the watcher started
			})
			_, err := h.e.Apply(context.Background(), parse(t, web, dns), "n1")
			if err == nil || !errors.Is(err, errNoSpace) || !strings.Contains(err.Error(), "nothing was changed") || failed.Load() != 1 {
				t.Fatalf("apply whose pending record cannot be saved: %v (%d saves failed)", err, failed.Load())
			}
			if h.text(t) != before || h.state(t).Pending != nil || h.state(t).Generation != 1 {
				t.Fatalf("state after: pending %+v, generation %d", h.state(t).Pending, h.state(t).Generation)
			}
			for i := range w.ids {
				if r := w.result(t, i); r.err != nil || r.res != nil {
					t.Fatalf("watcher: %v, %+v", r.err, r.res)
				}
			}
			h.e.Confirmation = nil
			h.mustApply(t, parse(t, web, dns))
		})
	}
}

// When the pending record cannot be removed after a failed arm, the
// error says so and how to clear it.
func TestArmThatCannotClearItsRecordSaysSo(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	h.e.Confirmation = &ConfirmOptions{Timeout: time.Hour, Watch: func(string) (string, error) {
		return "", errors.New("systemd-run: not found")
	}}
	failSaves(t, func(st *state.State) bool { return st.Pending == nil })
	_, err := h.e.Apply(context.Background(), parse(t, web, dns), "n1")
	if err == nil || !strings.Contains(err.Error(), "systemd-run: not found") || !errors.Is(err, errNoSpace) ||
		!strings.Contains(err.Error(), "svcnat revert") {
		t.Fatalf("apply: %v", err)
	}
}

// A failed apply whose pending record cannot be dropped says so; its
// watcher, which runs, settles it.
func TestDisarmFailingIsReported(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	before := h.text(t)
	w := h.pending(t, time.Hour)
	h.fake.FailWhen(func(line string) bool { return strings.HasPrefix(line, "-A SVCNAT-SERVICES") })
	failed := failSaves(t, func(st *state.State) bool { return st.Pending == nil })
	_, err := h.e.Apply(context.Background(), parse(t, web, dns), "n1")
	h.fake.FailWhen(nil)
	if err == nil || !errors.Is(err, iptables.ErrInjected) || !errors.Is(err, errNoSpace) || failed.Load() != 1 ||
		!strings.Contains(err.Error(), "its watcher") {
		t.Fatalf("apply: %v", err)
	}
	if r := w.result(t, 0); r.err != nil {
		t.Fatalf("watcher: %v", r.err)
	}
	if h.text(t) != before || h.state(t).Pending != nil {
		t.Fatalf("after the watcher: pending %+v", h.state(t).Pending)
	}
}

// A pending apply whose generation cannot be recorded says that its
// watcher reverts it, and the watcher does.
func TestPendingApplyThatCannotRecordIsReverted(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	before := h.text(t)
	w := h.pending(t, time.Hour)
	var failed atomic.Int32
	commit := commitState
	commitState = func(d *state.Dir, st *state.State, gens map[string]io.WriterTo) error {
		if failed.CompareAndSwap(0, 1) {
			return fmt.Errorf("writing generation: %w", errNoSpace)
		}
		return commit(d, st, gens)
	}
	t.Cleanup(func() { commitState = commit })
	_, err := h.e.Apply(context.Background(), parse(t, web, dns), "n1")
	if err == nil || !strings.Contains(err.Error(), "the rules are applied but recording generation 2 failed") ||
		!strings.Contains(err.Error(), "the watcher of apply "+w.ids[0]+" reverts them") {
		t.Fatalf("apply: %v", err)
	}
	if r := w.result(t, 0); r.err != nil || r.res == nil {
		t.Fatalf("watcher: %v, %+v", r.err, r.res)
	}
	if h.text(t) != before || h.state(t).Pending != nil {
		t.Fatal("the unrecorded apply was not reverted")
	}
}

// TestApplySavedRefusesWhatApplyRefuses: a saved plan goes through the
// refusals of Apply (applyRefusal), its prefix refused in its own words.
func TestApplySavedRefusesWhatApplyRefuses(t *testing.T) {
	saved := func(t *testing.T, h *testHost, files ...string) *planner.Plan {
		t.Helper()
		p, err := h.e.Plan(parse(t, files...), "n1")
		if err != nil {
			t.Fatal(err)
		}
		data, err := planner.MarshalPlan(p, "")
		if err != nil {
			t.Fatal(err)
		}
		p, _, err = planner.UnmarshalPlan(data, kernel.Pure)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("prefix changed", func(t *testing.T) {
		h := newHost(t)
		h.mustApply(t, parse(t, web))
		p := saved(t, h, "settings {\n  chain_prefix = \"KUBE\"\n}\n", web)
		_, err := h.e.ApplySaved(context.Background(), p, "")
		var pp *PlanPrefixError
		if !errors.As(err, &pp) || err.Error() != "the plan is for chains KUBE-*, but svcnat manages SVCNAT-* here; nothing was changed" {
			t.Fatalf("a saved plan for another prefix: %v (%T)", err, err)
		}
	})
	t.Run("pending confirmation", func(t *testing.T) {
		h := newHost(t)
		h.mustApply(t, parse(t, web))
		h.pending(t, time.Hour)
		res := h.mustApply(t, parse(t, web, dns))
		h.e.Confirmation = nil
		p := saved(t, h, web)
		_, err := h.e.ApplySaved(context.Background(), p, "")
		var pe *PendingError
		if !errors.As(err, &pe) || pe.Pending.ID != res.Pending.ID {
			t.Fatalf("a saved plan beside a pending apply: %v", err)
		}
		if _, err := h.e.Revert(context.Background(), res.Pending.ID, "test"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestApplyRefusalAfterRebootReadsNoRules: which prefix a pending apply a
// reboot ended leaves recorded is known from the state file, without
// reading the rules of the generation it returns to (at 10,000 services
// 25 MB): here they cannot be read, and plan still answers.
func TestApplyRefusalAfterRebootReadsNoRules(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	h.pending(t, time.Hour)
	h.mustApply(t, parse(t, web, dns))
	h.e.Confirmation = nil
	h.rebootEndsPending(t)
	gen1 := filepath.Join(h.e.StateDir, "generations", "1.ipv4.rules")
	rules1, err := os.ReadFile(gen1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gen1, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg     []string
		refused bool
	}{
		{[]string{web}, false},
		{[]string{"settings {\n  chain_prefix = \"KUBE\"\n}\n", web}, true},
	} {
		p, err := h.e.Plan(parse(t, c.cfg...), "n1")
		if err != nil {
			t.Fatal(err)
		}
		refusal, err := h.e.ApplyRefusal(p)
		var pc *PrefixChangedError
		if err != nil || c.refused != errors.As(refusal, &pc) {
			t.Errorf("plan for prefix %s beside a pending apply a reboot ended: %v, %v", p.Prefix, refusal, err)
		}
	}
	// The apply that settles it reads them: its watcher then ends.
	if err := os.WriteFile(gen1, rules1, 0o600); err != nil {
		t.Fatal(err)
	}
	h.mustApply(t, parse(t, web))
}

// TestApplyRefusalAfterRebootOfAnApplyAfterDestroy: a pending apply a
// reboot ended returns to a destroy, which owns no prefix: any prefix may
// come next, as apply, settling it, finds.
func TestApplyRefusalAfterRebootOfAnApplyAfterDestroy(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	if _, err := h.e.Destroy(context.Background(), "SVCNAT"); err != nil {
		t.Fatal(err)
	}
	h.pending(t, time.Hour)
	h.mustApply(t, parse(t, web))
	h.e.Confirmation = nil
	h.rebootEndsPending(t)
	kube := parse(t, "settings {\n  chain_prefix = \"KUBE\"\n}\n", web)
	p, err := h.e.Plan(kube, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if refusal, err := h.e.ApplyRefusal(p); refusal != nil || err != nil {
		t.Fatalf("plan for another prefix after a destroy: %v, %v", refusal, err)
	}
	h.mustApply(t, kube)
}
