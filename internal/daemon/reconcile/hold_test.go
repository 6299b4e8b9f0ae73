package reconcile

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/daemon/metrics"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/probe"
	"github.com/svcnat/svcnat/internal/state"
)

// operator is svcnat apply run by hand beside the loop: an engine of its
// own on the loop's state directory and kernel.
func (h *loopHost) operator() *engine.Engine {
	e := *h.loop.Engine
	e.Hooks, e.Confirmation = engine.Hooks{}, nil
	return &e
}

// configured parses body as the loop reads it from its directory (the
// file's path is part of the configuration's digest).
func (h *loopHost) configured(t *testing.T, name, body string) *config.Config {
	t.Helper()
	cfg, diags := config.Parse(map[string][]byte{filepath.Join(h.config, name): []byte(body)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

// applyPending applies cfg by hand with a confirm timeout, as apply
// --confirm-timeout does; the watcher runs as a goroutine, and its result
// comes on the channel returned.
func (h *loopHost) applyPending(t *testing.T, cfg *config.Config, timeout time.Duration) (*engine.Result, <-chan error) {
	t.Helper()
	e := h.operator()
	done := make(chan error, 1)
	e.Confirmation = &engine.ConfirmOptions{Timeout: timeout, Watch: func(id string) (string, error) {
		w := h.operator()
		go func() {
			_, err := w.Watch(context.Background(), id)
			done <- err
		}()
		return "test watcher", nil
	}}
	res, err := e.Apply(context.Background(), cfg, "n1")
	if err != nil || res.Pending == nil {
		t.Fatalf("apply --confirm-timeout: %v, %+v", err, res)
	}
	return res, done
}

func counter(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.Metric {
			return value(s)
		}
	}
	t.Fatalf("no series %s", name)
	return 0
}

// heldGauge is svcnat_held{reason}.
func heldGauge(t *testing.T, m *metrics.Metrics, reason string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, s := range mf.Metric {
			if mf.GetName() == "svcnat_held" && len(s.Label) == 1 && s.Label[0].GetValue() == reason {
				return value(s)
			}
		}
	}
	t.Fatalf("no svcnat_held{reason=%q}", reason)
	return 0
}

func value(s *dto.Metric) float64 {
	if s.Counter != nil {
		return s.Counter.GetValue()
	}
	return s.Gauge.GetValue()
}

// While an apply awaits confirmation the loop applies nothing and says
// why; once the watcher reverts it, the reverted configuration is held
// like a rejected one — at every pass, counted as an error, by a loop
// started afresh too — until the configuration changes or an operator
// applies it by hand.
func TestRevertedConfigurationIsNotApplied(t *testing.T) {
	h := startLoop(t, 50*time.Millisecond, map[string]string{"web.hcl": web})
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")
	before := h.owned(t)

	moved := strings.Replace(web, "10.64.1.2", "10.64.1.3", 1)
	res, reverted := h.applyPending(t, h.configured(t, "web.hcl", moved), 500*time.Millisecond)
	h.write(t, "web.hcl", moved) // the operator's edit, seen by the loop
	at = h.logs.await(t, at, "an apply awaits confirmation", "apply="+res.Pending.ID)
	if heldGauge(t, h.loop.Metrics, "pending") != 1 || heldGauge(t, h.loop.Metrics, "reverted") != 0 {
		t.Fatal("svcnat_held does not say that an apply awaits confirmation")
	}
	if err := <-reverted; err != nil {
		t.Fatalf("the watcher: %v", err)
	}
	if got := h.owned(t); got != before {
		t.Fatalf("the revert did not restore generation 1:\n%s", got)
	}
	// Two passes after the revert: both hold, neither applies.
	at = h.logs.await(t, at, "reverted", "generation=2", "reason=not confirmed within 500ms")
	// Passes run one after the other, every 50ms, each counting before it
	// logs: of the two logged after the counter is read, the second
	// started after the read, so its count is not in errs.
	errs := counter(t, h.loop.Metrics, "svcnat_reconcile_errors_total")
	at = h.logs.await(t, h.logs.end(), "reverted", "generation=2", "reason=not confirmed within 500ms")
	at = h.logs.await(t, at, "reverted", "generation=2", "reason=not confirmed within 500ms")
	if got := h.owned(t); got != before {
		t.Fatalf("the loop applied the reverted configuration:\n%s", got)
	}
	if n := counter(t, h.loop.Metrics, "svcnat_reconcile_errors_total"); n <= errs || errs < 1 {
		t.Fatalf("reconcile errors %v then %v: the held configuration is not counted", errs, n)
	}
	if h.loop.Healthy() {
		t.Fatal("healthy while the configuration on disk is not in force")
	}
	if st, _ := h.loop.Engine.State(); st.Generation != 3 {
		t.Fatalf("generation %d after the revert, want 3: something applied", st.Generation)
	}

	// A loop started afresh reads the same record and holds too.
	h.stop(t)
	h2 := startLoopOn(t, h.loop.Engine.StateDir, h.config, h.fake, 50*time.Millisecond)
	h2.logs.await(t, 0, "reverted", "event=start", "generation=2")
	h2.logs.await(t, 0, "reverted", "event=tick", "generation=2")
	if got := h2.owned(t); got != before {
		t.Fatalf("a restarted loop applied the reverted configuration:\n%s", got)
	}

	// A changed configuration is applied.
	third := strings.Replace(web, "10.64.1.2", "10.64.1.4", 1)
	h2.write(t, "web.hcl", third)
	// By the file's event or by a tick that saw the file first: on a
	// loaded machine a 50ms tick can win.
	at = h2.logs.await(t, 0, "applied", "generation=4")
	if !strings.Contains(h2.owned(t), "10.64.1.4:80") {
		t.Fatalf("the changed configuration was not applied:\n%s", h2.owned(t))
	}

	// Back to the reverted one, applied by hand this time: the loop
	// accepts the operator's decision.
	h2.write(t, "web.hcl", moved)
	at = h2.logs.await(t, at, "applied", "generation=5")
	if !h2.loop.Healthy() {
		t.Fatal("not healthy after applying a changed configuration")
	}
}

// An operator's apply of the reverted configuration by hand ends the
// hold: the loop sees a recorded generation with its digest.
func TestApplyByHandEndsTheHold(t *testing.T) {
	h := startLoop(t, 50*time.Millisecond, map[string]string{"web.hcl": web})
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")
	moved := strings.Replace(web, "10.64.1.2", "10.64.1.3", 1)
	cfg := h.configured(t, "web.hcl", moved)
	_, reverted := h.applyPending(t, cfg, 300*time.Millisecond)
	h.write(t, "web.hcl", moved)
	if err := <-reverted; err != nil {
		t.Fatalf("the watcher: %v", err)
	}
	at = h.logs.await(t, at, "reverted", "generation=2")
	if _, err := h.operator().Apply(context.Background(), cfg, "n1"); err != nil {
		t.Fatal(err)
	}
	h.logs.await(t, at, "no changes")
	if !strings.Contains(h.owned(t), "10.64.1.3:80") || !h.loop.Healthy() {
		t.Fatalf("after the apply by hand (healthy %v):\n%s", h.loop.Healthy(), h.owned(t))
	}
}

// The loop's metrics tell the recorded state from the start: a host at
// generation 2 whose rules are right reads as generation 2, applied
// successfully when it was recorded — not zeros until an apply.
func TestMetricsFromTheRecord(t *testing.T) {
	h := startLoop(t, time.Hour, map[string]string{"web.hcl": web})
	h.logs.await(t, 0, "applied", "generation=1")
	h.stop(t)
	moved := strings.Replace(web, "10.64.1.2", "10.64.1.3", 1)
	h.write(t, "web.hcl", moved)
	if _, err := h.operator().Apply(context.Background(), h.configured(t, "web.hcl", moved), "n1"); err != nil {
		t.Fatal(err)
	}
	rec, err := engine.ReadRecorded(h.loop.Engine.StateDir)
	if err != nil || rec.Generation != 2 {
		t.Fatalf("record %+v, %v", rec, err)
	}

	h2 := startLoopOn(t, h.loop.Engine.StateDir, h.config, h.fake, time.Hour)
	h2.logs.await(t, 0, "no changes", "event=start")
	m := h2.loop.Metrics
	if g, ok, at := counter(t, m, "svcnat_generation"), counter(t, m, "svcnat_last_apply_success"), counter(t, m, "svcnat_last_apply_timestamp_seconds"); g != 2 || ok != 1 || at != float64(rec.AppliedAt.UnixNano())/1e9 {
		t.Fatalf("metrics after a pass with nothing to change: generation %v, success %v, time %v (recorded %v)", g, ok, at, rec.AppliedAt)
	}
}

// A pending apply that a reboot ended is settled (recorded as reverted)
// by the loop's first pass, as by any command, and then held: the loop
// does not wait forever for a watcher that is gone.
func TestRebootEndedPendingApplyIsSettled(t *testing.T) {
	h := startLoop(t, time.Hour, map[string]string{"web.hcl": web})
	h.logs.await(t, 0, "applied", "generation=1")
	h.stop(t)
	watcher := h.pendingEndedByReboot(t)

	h2 := startLoopOn(t, h.loop.Engine.StateDir, h.config, h.fake, time.Hour)
	h2.logs.await(t, 0, "the apply of this configuration was reverted", "event=start", "generation=2", "reason=the host rebooted")
	if err := <-watcher; err != nil {
		t.Fatalf("the watcher: %v", err)
	}
}

// The revert holds whatever path the reverted apply read its files from:
// an operator who applies a copy with a deadline and then puts the files
// in place finds the rules of the revert kept, as they are the same rules.
func TestRevertedRulesFromAnotherPathAreNotApplied(t *testing.T) {
	h := startLoop(t, 50*time.Millisecond, map[string]string{"web.hcl": web})
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")
	before := h.owned(t)
	moved := strings.Replace(web, "10.64.1.2", "10.64.1.3", 1)
	copied, diags := config.Parse(map[string][]byte{filepath.Join(t.TempDir(), "web.hcl"): []byte(moved)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, reverted := h.applyPending(t, copied, 300*time.Millisecond)
	h.write(t, "web.hcl", moved)
	if err := <-reverted; err != nil {
		t.Fatalf("the watcher: %v", err)
	}
	at = h.logs.await(t, at, "the apply of this configuration was reverted", "generation=2", "reason=not confirmed within 300ms")
	h.logs.await(t, at, "the apply of this configuration was reverted", "generation=2")
	if got := h.owned(t); got != before {
		t.Fatalf("the loop applied the reverted rules:\n%s", got)
	}
}

// While it holds a reverted configuration, the loop keeps the rules the
// revert left: a flush (iptables -t nat -F -X, a firewalld reload) is
// repaired to the recorded generation's rules, the canary comes back, and
// the hold stays — no generation is recorded, the revert is not undone.
func TestHeldRevertRepairsDrift(t *testing.T) {
	h := startLoop(t, 50*time.Millisecond, map[string]string{"web.hcl": web})
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")
	before := h.owned(t)
	moved := strings.Replace(web, "10.64.1.2", "10.64.1.3", 1)
	_, reverted := h.applyPending(t, h.configured(t, "web.hcl", moved), 300*time.Millisecond)
	h.write(t, "web.hcl", moved)
	if err := <-reverted; err != nil {
		t.Fatalf("the watcher: %v", err)
	}
	at = h.logs.await(t, at, "the apply of this configuration was reverted", "generation=2")
	if heldGauge(t, h.loop.Metrics, "reverted") != 1 || heldGauge(t, h.loop.Metrics, "pending") != 0 {
		t.Fatal("svcnat_held does not say that a reverted configuration is held")
	}

	h.restore(t, "*nat\n-F\n-X\nCOMMIT\n")
	at = h.logs.await(t, at, "repaired the rules of the reverted-to generation", "generation=3")
	if got := h.owned(t); got != before {
		t.Fatalf("the flush during the hold was not repaired to the revert's rules:\n%s\nwant:\n%s", got, before)
	}
	// The canaries come back by the next pass, which makes them first (a
	// flush that came after this pass made them is seen by the canary
	// check): polled, not assumed to be there with the repair.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		m, err := h.loop.Engine.MissingCanaries("SVCNAT")
		if err == nil && len(m) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("canaries after the repair: %v %v", m, err)
		}
	}
	h.logs.await(t, at, "the apply of this configuration was reverted", "generation=2")
	if st, _ := h.loop.Engine.State(); st.Generation != 3 {
		t.Fatalf("generation %d after the repair, want 3: the repair recorded one, or applied the held configuration", st.Generation)
	}
	if got := h.owned(t); got != before {
		t.Fatalf("the held configuration was applied after the repair:\n%s", got)
	}
}

// A pending apply a reboot ended leaves the kernel with whatever the
// boot restored (here nothing): the loop settles it as a revert, holds,
// and puts the reverted-to generation's rules back.
func TestRebootEndedPendingApplyRestoresTheRules(t *testing.T) {
	h := startLoop(t, time.Hour, map[string]string{"web.hcl": web})
	h.logs.await(t, 0, "applied", "generation=1")
	before := h.owned(t)
	h.stop(t)
	watcher := h.pendingEndedByReboot(t)
	// The boot restored no rules.
	h.restore(t, "*nat\n-F\n-X\nCOMMIT\n*filter\n-F\n-X\nCOMMIT\n")

	h2 := startLoopOn(t, h.loop.Engine.StateDir, h.config, h.fake, time.Hour)
	h2.logs.await(t, 0, "repaired the rules of the reverted-to generation", "event=start", "generation=3")
	if got := h2.owned(t); got != before {
		t.Fatalf("after the reboot the loop left:\n%s\nwant:\n%s", got, before)
	}
	if err := <-watcher; err != nil {
		t.Fatalf("the watcher: %v", err)
	}
}

// A repair during a hold that fails is a failed run: logged, unhealthy
// for the health-check ports too (the rules in force are not kept), and
// svcnat_last_apply_success stays 0 through the held passes that follow;
// once the kernel takes the repair, the ports are healthy again.
func TestHeldRepairFails(t *testing.T) {
	h := startLoop(t, 50*time.Millisecond, map[string]string{"web.hcl": web})
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")
	moved := strings.Replace(web, "10.64.1.2", "10.64.1.3", 1)
	_, reverted := h.applyPending(t, h.configured(t, "web.hcl", moved), 300*time.Millisecond)
	h.write(t, "web.hcl", moved)
	if err := <-reverted; err != nil {
		t.Fatalf("the watcher: %v", err)
	}
	at = h.logs.await(t, at, "the apply of this configuration was reverted", "generation=2")
	// A held pass logs, then keeps the rules: the next pass's line says
	// that this one is done.
	at = h.logs.await(t, at, "the apply of this configuration was reverted", "generation=2")
	if !h.loop.Serving() || counter(t, h.loop.Metrics, "svcnat_last_apply_success") != 1 {
		t.Fatal("a hold that keeps the rules in force is not serving, or the revert does not read as a success")
	}
	h.fake.FailWhen(func(line string) bool { return strings.HasPrefix(line, "-A SVCNAT-SVC-") })
	h.restore(t, "*nat\n-F\nCOMMIT\n")
	at = h.logs.await(t, at, "repairing the rules of the reverted-to generation failed")
	at = h.logs.await(t, at, "the apply of this configuration was reverted", "generation=2")
	if h.loop.Serving() || counter(t, h.loop.Metrics, "svcnat_last_apply_success") != 0 {
		t.Fatal("a failed repair reads as serving, or a held pass after it set last_apply_success")
	}
	h.fake.FailWhen(nil)
	h.logs.await(t, at, "repaired the rules of the reverted-to generation")
	if !h.loop.Serving() || counter(t, h.loop.Metrics, "svcnat_last_apply_success") != 1 {
		t.Fatal("not serving after the repair")
	}
}

// An apply by hand whose probe failed was rolled back: the loop holds
// that configuration as it holds a revert, instead of applying it again
// without the probes.
func TestProbeFailedConfigurationIsNotApplied(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down, err := probe.Parse("tcp://" + closed.Addr().String())
	closed.Close()
	if err != nil {
		t.Fatal(err)
	}
	h := startLoop(t, 50*time.Millisecond, map[string]string{"web.hcl": web})
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")
	before := h.owned(t)
	h.stop(t) // the operator applies before the loop sees the edit
	moved := strings.Replace(web, "10.64.1.2", "10.64.1.3", 1)
	h.write(t, "web.hcl", moved)
	e := h.operator()
	e.Probes, e.ProbeTimeout = []probe.Probe{down}, 100*time.Millisecond
	if _, err := e.Apply(context.Background(), h.configured(t, "web.hcl", moved), "n1"); err == nil {
		t.Fatal("an apply whose probe fails succeeded")
	}
	h2 := startLoopOn(t, h.loop.Engine.StateDir, h.config, h.fake, 50*time.Millisecond)
	at = h2.logs.await(t, 0, "the apply of this configuration was reverted", "event=start", "reason=rolled back: probe "+down.URL)
	h2.logs.await(t, at, "the apply of this configuration was reverted", "event=tick")
	if got := h2.owned(t); got != before {
		t.Fatalf("the loop applied the configuration whose probe failed:\n%s", got)
	}
}

// pendingEndedByReboot makes an apply of web with a moved endpoint
// pending (its watcher, returned, holds an hour's deadline), puts that
// configuration on disk, and makes the pending record one of another
// boot: a reboot ended it before anyone confirmed. The loop is stopped.
func (h *loopHost) pendingEndedByReboot(t *testing.T) <-chan error {
	t.Helper()
	moved := strings.Replace(web, "10.64.1.2", "10.64.1.3", 1)
	_, watcher := h.applyPending(t, h.configured(t, "web.hcl", moved), time.Hour)
	h.write(t, "web.hcl", moved)
	d, err := state.Open(h.loop.Engine.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.Load()
	if err != nil || st.Pending == nil {
		t.Fatalf("pending: %+v, %v", st, err)
	}
	st.Pending.BootID = "another boot"
	if err := d.Save(st); err != nil {
		t.Fatal(err)
	}
	return watcher
}

// TestRulesMovedToAnotherBackendAreNotFollowedBlindly: once the state
// directory records another backend than the loop's (an apply --backend
// moved svcnat's rules while the loop ran), the loop applies nothing
// here — it would make a second set — says so, and is unhealthy.
func TestRulesMovedToAnotherBackendAreNotFollowedBlindly(t *testing.T) {
	h := startLoop(t, 50*time.Millisecond, map[string]string{"web.hcl": web})
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")
	before := h.owned(t)
	p := filepath.Join(h.loop.Engine.StateDir, "state.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.ReplaceAll(string(data), `"backend": "iptables-nft"`, `"backend": "nftables"`)
	if moved == string(data) {
		t.Fatalf("state.json records no iptables-nft backend:\n%s", data)
	}
	if err := os.WriteFile(p, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}
	h.write(t, "web.hcl", strings.Replace(web, "10.64.1.2", "10.64.1.3", 1))
	h.logs.await(t, at, "svcnat's rules were moved to another backend", "recorded_backend=nftables")
	if got := h.owned(t); got != before {
		t.Fatalf("the loop applied on the backend the rules left:\n%s", got)
	}
	if h.loop.Healthy() {
		t.Fatal("healthy while applying nothing")
	}
}
