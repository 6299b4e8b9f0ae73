package engine

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/conntrack"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// foreign is what Docker and an operator leave on a host; no run may
// change a byte of it.
const foreign = `*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
*filter
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
`

// web has two TCP endpoints; dns two UDP ones.
const web = `service "default/web" {
  cluster_ips = ["10.32.0.10"]
  port {
    port = 80
  }
  endpoint {
    address = "10.64.1.2"
  }
  endpoint {
    address = "10.64.1.3"
  }
}
`

const dns = `service "kube-system/dns" {
  cluster_ips = ["10.32.0.53"]
  port {
    protocol = "UDP"
    port     = 53
  }
  endpoint {
    address = "10.64.2.2"
  }
  endpoint {
    address = "10.64.2.3"
  }
}
`

// cleaner records the conntrack flows it is asked to delete.
type cleaner struct{ flows []conntrack.Flow }

func (c *cleaner) Delete(flows []conntrack.Flow) (int, error) {
	c.flows = append(c.flows, flows...)
	return len(flows), nil
}

type testHost struct {
	e       *Engine
	fake    *iptables.Fake
	cleaner *cleaner
	planned []Planned
	asked   int
}

func newHost(t *testing.T) *testHost {
	t.Helper()
	fake := iptables.NewFake()
	if err := fake.Restore(backend.IPv4, []byte(foreign), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	h := &testHost{fake: fake, cleaner: &cleaner{}}
	h.e = &Engine{Host: Host{Kernel: fake, Conntrack: h.cleaner}, StateDir: t.TempDir()}
	h.e.Hooks = Hooks{
		Planned: func(p Planned) { h.planned = append(h.planned, p) },
		Approve: func(context.Context, *planner.Plan) (bool, error) { h.asked++; return true, nil },
	}
	return h
}

func parse(t *testing.T, files ...string) *config.Config {
	t.Helper()
	srcs := map[string][]byte{}
	for i, f := range files {
		srcs[string(rune('a'+i))+".hcl"] = []byte(f)
	}
	cfg, diags := config.Parse(srcs)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

func (h *testHost) text(t *testing.T) string {
	t.Helper()
	rs, err := h.fake.Save(backend.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	return rs.Text()
}

func (h *testHost) foreign(t *testing.T) string {
	t.Helper()
	rs, err := h.fake.Save(backend.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	return rs.Foreign("SVCNAT").Text()
}

func (h *testHost) state(t *testing.T) *state.State {
	t.Helper()
	d, err := state.Open(h.e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (h *testHost) mustApply(t *testing.T, cfg *config.Config) *Result {
	t.Helper()
	res, err := h.e.Apply(context.Background(), cfg, "n1")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestApplyCommitsVerifiesAndRecords(t *testing.T) {
	h := newHost(t)
	before := h.foreign(t)
	res := h.mustApply(t, parse(t, web))
	if !res.Applied || res.Generation != 1 || res.Repaired || h.asked != 1 || len(h.planned) != 1 || h.planned[0].Op != OpApply {
		t.Fatalf("result %+v, asked %d, planned %d", res, h.asked, len(h.planned))
	}
	if p, err := h.e.Plan(parse(t, web), "n1"); err != nil || !p.Empty() {
		t.Fatalf("plan after apply: %v, %+v", err, p.Summary())
	}
	if after := h.foreign(t); after != before {
		t.Fatalf("foreign rules changed:\n%s\n---\n%s", before, after)
	}
	st := h.state(t)
	if st.Generation != 1 || st.Prefix != "SVCNAT" || st.Backend != "iptables-nft" || len(st.Generations) != 1 || !slices.Equal(st.Generations[0].Rules, []string{"ipv4", "ipv6"}) {
		t.Fatalf("state %+v", st)
	}
	// The generation holds what svcnat owns now; no backup is written
	// (the generations hold every committed state).
	d, _ := state.Open(h.e.StateDir)
	if b, err := d.ReadGeneration(1, "ipv4"); err != nil || !strings.Contains(string(b), ":SVCNAT-SERVICES") {
		t.Fatalf("rules of generation 1: %v\n%s", err, b)
	}
	if _, err := os.Stat(filepath.Join(h.e.StateDir, "backups")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a backups directory: %v", err)
	}
	// Nothing to do: nothing asked, nothing recorded.
	h.asked = 0
	if res := h.mustApply(t, parse(t, web)); res.Applied || res.Generation != 0 || h.asked != 0 {
		t.Fatalf("empty apply: %+v, asked %d", res, h.asked)
	}
}

func TestApplyDeclinedChangesNothing(t *testing.T) {
	h := newHost(t)
	before := h.text(t)
	h.e.Hooks.Approve = func(context.Context, *planner.Plan) (bool, error) { return false, nil }
	_, err := h.e.Apply(context.Background(), parse(t, web), "n1")
	if !errors.Is(err, ErrCancelled) || err.Error() != "apply cancelled; nothing was changed" {
		t.Fatalf("err = %v", err)
	}
	if h.text(t) != before || h.state(t).Generation != 0 {
		t.Fatal("a declined apply changed something")
	}
}

func TestApplyRefusedPayloadRollsBack(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	before := h.text(t)
	h.fake.FailWhen(func(line string) bool { return strings.HasPrefix(line, "-A SVCNAT-SERVICES") })
	_, err := h.e.Apply(context.Background(), parse(t, web, dns), "n1")
	h.fake.FailWhen(nil)
	if !errors.Is(err, iptables.ErrInjected) || !strings.Contains(err.Error(), "restored") {
		t.Fatalf("err = %v, want the injected failure, rolled back", err)
	}
	if h.text(t) != before || h.state(t).Generation != 1 {
		t.Fatalf("rules or state changed by a failed apply (generation %d)", h.state(t).Generation)
	}
}

func TestApplyInterruptedBeforeCommit(t *testing.T) {
	h := newHost(t)
	before := h.text(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.e.Apply(ctx, parse(t, web), "n1")
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("err = %v", err)
	}
	if h.text(t) != before || h.state(t).Generation != 0 {
		t.Fatal("an interrupted apply changed something")
	}
}

func TestApplySavedPlanAndStalePlan(t *testing.T) {
	h := newHost(t)
	p, err := h.e.Plan(parse(t, web), "n1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := planner.MarshalPlan(p, "sha256:cfg")
	if err != nil {
		t.Fatal(err)
	}
	saved, digest, err := planner.UnmarshalPlan(data, kernel.Pure)
	if err != nil {
		t.Fatal(err)
	}
	// A saved plan was reviewed: it is not asked about again.
	res, err := h.e.ApplySaved(context.Background(), saved, digest)
	if err != nil || res.Generation != 1 || h.asked != 0 {
		t.Fatalf("ApplySaved: %v, %+v, asked %d", err, res, h.asked)
	}
	if st := h.state(t); st.ConfigDigest != "sha256:cfg" {
		t.Fatalf("config digest %q", st.ConfigDigest)
	}
	// The same plan again: the live rules are no longer its snapshot.
	before := h.text(t)
	again, _, _ := planner.UnmarshalPlan(data, kernel.Pure)
	_, err = h.e.ApplySaved(context.Background(), again, digest)
	var stale *StaleError
	if !errors.As(err, &stale) || stale.Since.Empty() {
		t.Fatalf("err = %v, want a *StaleError saying what changed", err)
	}
	if h.text(t) != before || h.state(t).Generation != 1 {
		t.Fatal("a stale plan changed something")
	}
	// Another backend's plan, and a prefix svcnat may not own, are refused.
	other, _, _ := planner.UnmarshalPlan(data, kernel.Pure)
	other.Backend = "legacy"
	if _, err := h.e.ApplySaved(context.Background(), other, digest); err == nil || !strings.Contains(err.Error(), "legacy backend") {
		t.Fatalf("plan for another backend: %v", err)
	}
	docker := planner.New("DOCKER", "nft", nil, nil)
	if _, err := h.e.ApplySaved(context.Background(), docker, ""); err == nil || !strings.Contains(err.Error(), `"DOCKER" is not one svcnat may own`) {
		t.Fatalf("a plan for Docker's chains: %v", err)
	}
}

func TestRollbackAndDestroy(t *testing.T) {
	h := newHost(t)
	if _, err := h.e.Rollback(context.Background(), "SVCNAT"); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("rollback without generations: %v", err)
	}
	h.mustApply(t, parse(t, web))
	first := h.text(t)
	h.mustApply(t, parse(t, web, dns))
	res, err := h.e.Rollback(context.Background(), "SVCNAT")
	if err != nil || res.Generation != 3 {
		t.Fatalf("rollback: %v, %+v", err, res)
	}
	if h.text(t) != first {
		t.Fatal("rollback did not restore generation 1's rules")
	}
	last := h.planned[len(h.planned)-1]
	if last.Op != OpRollback || last.Rollback == nil || last.Rollback.From != 2 || last.Rollback.To.Generation != 1 {
		t.Fatalf("planned %+v", last)
	}
	// Removing dns's UDP endpoints cleans their conntrack entries.
	if len(h.cleaner.flows) != 2 {
		t.Fatalf("conntrack flows after dns went away: %+v", h.cleaner.flows)
	}
	before := h.foreign(t)
	res, err = h.e.Destroy(context.Background(), "SVCNAT")
	if err != nil || res.Generation != 4 {
		t.Fatalf("destroy: %v, %+v", err, res)
	}
	if strings.Contains(h.text(t), "SVCNAT") || h.foreign(t) != before {
		t.Fatalf("destroy left owned rules or changed foreign ones:\n%s", h.text(t))
	}
	if st := h.state(t); st.Prefix != "" {
		t.Fatalf("destroyed, yet the state records prefix %q", st.Prefix)
	}
}

func TestUDPEndpointRemovedCleansItsFlows(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, dns))
	res := h.mustApply(t, parse(t, strings.Replace(dns, "  endpoint {\n    address = \"10.64.2.3\"\n  }\n", "", 1)))
	want := []conntrack.Flow{{Protocol: "udp", OrigDst: netip.MustParseAddr("10.32.0.53"), OrigPort: 53, DNAT: netip.MustParseAddr("10.64.2.3")}}
	if !slices.Equal(h.cleaner.flows, want) || res.Conntrack.Flows != 1 || res.Conntrack.Err != nil {
		t.Fatalf("flows %+v (result %+v), want %+v", h.cleaner.flows, res.Conntrack, want)
	}
}

func TestLockHeld(t *testing.T) {
	h := newHost(t)
	d, err := state.Open(h.e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := d.Lock(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	before := h.text(t)
	for name, run := range map[string]func() error{
		"apply":    func() error { _, err := h.e.Apply(context.Background(), parse(t, web), "n1"); return err },
		"rollback": func() error { _, err := h.e.Rollback(context.Background(), "SVCNAT"); return err },
		"destroy":  func() error { _, err := h.e.Destroy(context.Background(), "SVCNAT"); return err },
	} {
		var le *state.LockError
		if err := run(); !errors.Is(err, ErrLocked) || !errors.As(err, &le) || le.Holder == nil || le.Holder.PID != os.Getpid() {
			t.Errorf("%s with the lock held: %v", name, err)
		}
	}
	if h.text(t) != before || len(h.planned) != 0 {
		t.Fatal("a run without the lock changed or planned something")
	}
}

func TestPrefixChangeNeedsDestroy(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	before := h.text(t)
	_, err := h.e.Apply(context.Background(), parse(t, "settings {\n  chain_prefix = \"SN\"\n}\n", web), "n1")
	var pc *PrefixChangedError
	if !errors.As(err, &pc) || pc.Recorded != "SVCNAT" || pc.Configured != "SN" || pc.StateDir != h.e.StateDir {
		t.Fatalf("err = %v", err)
	}
	if h.text(t) != before {
		t.Fatal("a refused prefix change changed the rules")
	}
}

func TestForeignJumpBlocksDeletion(t *testing.T) {
	h := newHost(t)
	res := h.mustApply(t, parse(t, web))
	sep := h.pinSEP(t, res, "-s 10.9.9.9/32 ")
	before := h.text(t)
	_, err := h.e.Destroy(context.Background(), "SVCNAT")
	var be *BlockedError
	if !errors.As(err, &be) || len(be.Blocked) != 1 || be.Blocked[0].Pins != sep || be.Blocked[0].Rule.Chain != "MYCHAIN" {
		t.Fatalf("err = %v", err)
	}
	if h.text(t) != before || h.state(t).Generation != 1 {
		t.Fatal("a blocked destroy changed something")
	}
}

// An apply killed between its commit and its record leaves the rules
// right and the state behind: the next apply records them. Rules another
// state directory recorded are refused, unless adopted: then they are
// recorded the same way.
func TestApplyRecordsRulesAnEarlierApplyDidNot(t *testing.T) {
	h := newHost(t)
	h.killedApply(t, web, StepVerify)
	if res := h.mustApply(t, parse(t, web)); res.Applied || !res.Repaired || res.Generation != 1 {
		t.Fatalf("result %+v", res)
	}
	h.e.StateDir = filepath.Join(t.TempDir(), "fresh")
	var ue *UnrecordedError
	if _, err := h.e.Apply(context.Background(), parse(t, web), "n1"); !errors.As(err, &ue) {
		t.Fatalf("apply over the rules of another state directory: %v", err)
	}
	h.e.Adopt = true
	res := h.mustApply(t, parse(t, web))
	if res.Applied || !res.Repaired || res.Generation != 1 {
		t.Fatalf("result %+v", res)
	}
	if res := h.mustApply(t, parse(t, web)); res.Repaired || res.Generation != 0 {
		t.Fatalf("second apply repaired again: %+v", res)
	}
}

func TestShowReportsDrift(t *testing.T) {
	h := newHost(t)
	if s, err := h.e.Show("SVCNAT"); err != nil || s.Drift != nil || s.State.Generation != 0 {
		t.Fatalf("show before any apply: %v, %+v", err, s)
	}
	h.mustApply(t, parse(t, web))
	s, err := h.e.Show("SVCNAT")
	if err != nil || s.Drift == nil || !s.Drift.Empty() || len(s.Owned.Names()) != 1 {
		t.Fatalf("show after apply: %v, %+v", err, s)
	}
	drift := "*nat\n-A SVCNAT-SERVICES -d 1.2.3.4/32 -j RETURN\nCOMMIT\n"
	if err := h.fake.Restore(backend.IPv4, []byte(drift), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	if s, err := h.e.Show("SVCNAT"); err != nil || s.Drift.Empty() || s.Drift.Summary().RulesAdded != 1 {
		t.Fatalf("show after a foreign edit of an owned chain: %v, %+v", err, s.Drift.Summary())
	}
}

// rebootEndsPending makes the pending apply's record one of another boot:
// a reboot ended it, and the next command that takes the lock settles it.
func (h *testHost) rebootEndsPending(t *testing.T) {
	t.Helper()
	d, err := state.Open(h.e.StateDir)
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
}

// pinSEP adds a foreign chain whose rule (match, then a jump) pins an
// endpoint chain of the apply res, and returns that chain: a plan that
// deletes it is blocked.
func (h *testHost) pinSEP(t *testing.T, res *Result, match string) string {
	t.Helper()
	var sep string
	for _, c := range res.Plan.Changes {
		if strings.HasPrefix(c.Chain, "SVCNAT-SEP-") {
			sep = c.Chain
		}
	}
	pin := "*nat\n:MYCHAIN - [0:0]\n-A MYCHAIN " + match + "-j " + sep + "\nCOMMIT\n"
	if err := h.fake.Restore(backend.IPv4, []byte(pin), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	return sep
}
