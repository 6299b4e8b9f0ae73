package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/applier"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/state"
)

// TestHandMadeChainIsNotInterrupted: one hand-made, unreferenced chain of
// the prefix beside a fresh state directory is no interrupted apply's:
// this state directory never noted it. plan and show do not call it
// interrupted, and the refusal names it as unrecorded; only a chain an
// apply of this state directory noted (applying.json) is interrupted.
func TestHandMadeChainIsNotInterrupted(t *testing.T) {
	h := newHost(t)
	h.restore(t, "*nat\n:SVCNAT-SEP-ABCDEFGHIJKLMNOP - [0:0]\nCOMMIT\n")
	p, err := h.e.Plan(parse(t, web), "n1")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Interrupted) != 0 {
		t.Fatalf("plan calls a hand-made chain interrupted: %v", p.Interrupted)
	}
	refusal, err := h.e.ApplyRefusal(p)
	var ue *UnrecordedError
	if err != nil || !errors.As(refusal, &ue) || !slices.Equal(ue.Chains, []string{"IPv4 nat SVCNAT-SEP-ABCDEFGHIJKLMNOP"}) {
		t.Fatalf("refusal: %v, %v", refusal, err)
	}
	s, err := h.e.Show("SVCNAT")
	if err != nil || len(s.Interrupted) != 0 {
		t.Fatalf("show: %v, interrupted %v", err, s.Interrupted)
	}
	dp, err := h.e.DestroyPlan("SVCNAT")
	if err != nil || len(dp.Interrupted) != 0 {
		t.Fatalf("plan -destroy: %v, interrupted %v", err, dp.Interrupted)
	}
	if _, err := h.e.Destroy(context.Background(), "SVCNAT"); !errors.As(err, &ue) {
		t.Fatalf("destroy: %v", err)
	}
}

// TestChainsOfOtherTablesAreNeverOwned: chains of the prefix in tables
// svcnat never writes (mangle, raw) are not planned, refused, counted nor
// deleted, by apply or destroy, with or without --adopt.
func TestChainsOfOtherTablesAreNeverOwned(t *testing.T) {
	h := newHost(t)
	h.restore(t, "*mangle\n:SVCNAT-MARK - [0:0]\n-A PREROUTING -j SVCNAT-MARK\n-A SVCNAT-MARK -j MARK --set-xmark 0x1/0x1\nCOMMIT\n*raw\n:SVCNAT-RAW - [0:0]\nCOMMIT\n")
	before := h.foreign(t)
	h.mustApply(t, parse(t, web))
	h.e.Adopt = true
	h.mustApply(t, parse(t, web, dns))
	if _, err := h.e.Destroy(context.Background(), "SVCNAT"); err != nil {
		t.Fatal(err)
	}
	after := h.text(t)
	for _, s := range []string{":SVCNAT-MARK", "-A PREROUTING -j SVCNAT-MARK", "-A SVCNAT-MARK -j MARK", ":SVCNAT-RAW"} {
		if !strings.Contains(after, s) {
			t.Fatalf("%q is gone:\n%s", s, after)
		}
	}
	if h.foreign(t) != before {
		t.Fatalf("foreign rules changed:\n%s\nwas\n%s", h.foreign(t), before)
	}
}

// TestKubeProxyIsNeverAdopted: with the prefix KUBE where kube-proxy runs
// (its KUBE-PROXY-CANARY in any table, here mangle alone), apply, plan
// and destroy refuse, --adopt too, naming kube-proxy, and the hint does
// not offer --adopt.
func TestKubeProxyIsNeverAdopted(t *testing.T) {
	h := newHost(t)
	kube := "settings {\n  chain_prefix = \"KUBE\"\n}\n"
	h.restore(t, "*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n*nat\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n")
	before := h.text(t)
	for _, adopt := range []bool{false, true} {
		h.e.Adopt = adopt
		var ke *KubeProxyError
		if err := refusedBoth(t, h, kube, web); !errors.As(err, &ke) || !strings.Contains(err.Error(), "kube-proxy") ||
			strings.Contains(ke.Hint(), "adopt") {
			t.Fatalf("adopt %v: apply over kube-proxy: %v", adopt, err)
		}
		if _, err := h.e.Destroy(context.Background(), "KUBE"); !errors.As(err, &ke) {
			t.Fatalf("adopt %v: destroy over kube-proxy: %v", adopt, err)
		}
		if h.text(t) != before {
			t.Fatalf("adopt %v: a refused command changed the rules:\n%s", adopt, h.text(t))
		}
	}
}

// TestRolledBackApplyForgetsItsChains: an apply that fails and rolls back
// removed the chains it created, so applying.json no longer names them:
// a chain of that name someone else makes later is not taken as svcnat's.
// What an earlier killed apply noted stays noted: its chains are still
// live.
func TestRolledBackApplyForgetsItsChains(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	noteChains(t, h, "IPv4 nat SVCNAT-SEP-KILLED")
	h.fake.FailWhen(func(line string) bool { return strings.HasPrefix(line, "COMMIT") })
	_, err := h.e.Apply(context.Background(), parse(t, web, dns), "n1")
	h.fake.FailWhen(nil)
	var ae *applier.Error
	if !errors.As(err, &ae) || !ae.RolledBack {
		t.Fatalf("apply: %v, want a rolled-back failure", err)
	}
	d, err := state.Open(h.e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	in, err := readIntent(d)
	if err != nil || !slices.Equal(in.Chains, []string{"IPv4 nat SVCNAT-SEP-KILLED"}) {
		t.Fatalf("after a rolled-back apply, applying.json names %v (%v), want only the killed apply's chain", in.Chains, err)
	}
}

func noteChains(t *testing.T, h *testHost, chains ...string) {
	t.Helper()
	d, err := state.Open(h.e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(intent{Chains: chains})
	if err := d.WriteFile(intentFile, data); err != nil {
		t.Fatal(err)
	}
}

// TestRepairNotesTablesAndOwner: after a reboot that restored none of the
// rules (nor the filter table, nor /run/svcnat), a repair writes the
// recorded rules back: it notes the tables it creates, so destroy gives
// them back, and the namespace's owner record, so another state
// directory is refused again.
func TestRepairNotesTablesAndOwner(t *testing.T) {
	h := newHost(t)
	h.e.RuntimeDir = filepath.Join(t.TempDir(), "run")
	h.mustApply(t, parse(t, web))
	// The reboot: a kernel with nat alone, an empty /run.
	h.fake = iptables.NewFake()
	h.restore(t, "*nat\n:DOCKER - [0:0]\nCOMMIT\n")
	h.e.Kernel = h.fake
	if err := os.RemoveAll(h.e.RuntimeDir); err != nil {
		t.Fatal(err)
	}
	d, err := state.Open(h.e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(h.e.StateDir, createdTablesFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	res, err := h.e.RepairRecorded(context.Background(), "SVCNAT")
	if err != nil || !res.Applied {
		t.Fatalf("repair: %+v, %v", res, err)
	}
	ct, err := readCreatedTables(d)
	if err != nil || !slices.Contains(ct[h.fake.Name()], "ipv4 filter") {
		t.Fatalf("after the repair the created tables are %v (%v), want ipv4 filter", ct, err)
	}
	o, err := h.e.readOwners()
	if err != nil || o["SVCNAT"] == "" || !sameDir(o["SVCNAT"], h.e.StateDir) {
		t.Fatalf("after the repair the owner record is %v (%v)", o, err)
	}
	if _, err := h.e.Destroy(context.Background(), "SVCNAT"); err != nil {
		t.Fatal(err)
	}
	if text := h.text(t); strings.Contains(text, "*filter") {
		t.Fatalf("destroy kept the filter table the repair created:\n%s", text)
	}
}

// TestConfirmTakesNoNamespaceLock: confirm and Pending change no rules:
// a run of another state directory holding the namespace's lock (at its
// prompt, say) never blocks them.
func TestConfirmTakesNoNamespaceLock(t *testing.T) {
	h := newHost(t)
	h.e.RuntimeDir = t.TempDir()
	h.mustApply(t, parse(t, web))
	lock, err := h.e.lockNamespace(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.unlock()
	h.e.LockTimeout = 0
	if _, err := h.e.Confirm(context.Background(), ""); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("confirm beside a held namespace lock: %v", err)
	}
}

// TestAdoptedNamesTheChains: Result.Adopted names the chains --adopt took
// over, and none once they are recorded.
func TestAdoptedNamesTheChains(t *testing.T) {
	h := newHost(t)
	h.restore(t, cni)
	h.e.Adopt = true
	if res := h.mustApply(t, parse(t, cniPrefix, web)); !slices.Equal(res.Adopted, cniChains) {
		t.Fatalf("adopted %v, want %v", res.Adopted, cniChains)
	}
	if res := h.mustApply(t, parse(t, cniPrefix, web, dns)); len(res.Adopted) != 0 {
		t.Fatalf("the second apply adopted %v", res.Adopted)
	}
}

// TestNamespaceIdentifiedOncePerRun: a run names its network namespace
// once, with its lock, and reads and writes the owner record of that
// namespace: one deleted and made again mid-run cannot give it another's.
func TestNamespaceIdentifiedOncePerRun(t *testing.T) {
	h := newHost(t)
	h.e.RuntimeDir = t.TempDir()
	n := 0
	defer func(was func(string) (string, error)) { netnsIdentity = was }(netnsIdentity)
	netnsIdentity = func(string) (string, error) { n++; return fmt.Sprintf("c%d", n), nil }
	h.mustApply(t, parse(t, web))
	if n != 1 {
		t.Fatalf("one apply identified the namespace %d times", n)
	}
	if _, err := os.Stat(filepath.Join(h.e.RuntimeDir, "netns-c1.owners.json")); err != nil {
		t.Fatalf("the owner record is not the locked namespace's: %v", err)
	}
}

// TestRolledBackRepairForgetsItsChains: so does a repair rolled back.
func TestRolledBackRepairForgetsItsChains(t *testing.T) {
	h := newHost(t)
	h.mustApply(t, parse(t, web))
	h.fake = iptables.NewFake()
	h.restore(t, foreign)
	h.e.Kernel = h.fake
	noteChains(t, h, "IPv4 nat SVCNAT-SEP-KILLED")
	h.fake.FailWhen(func(line string) bool { return strings.HasPrefix(line, "COMMIT") })
	_, err := h.e.RepairRecorded(context.Background(), "SVCNAT")
	h.fake.FailWhen(nil)
	var ae *applier.Error
	if !errors.As(err, &ae) || !ae.RolledBack {
		t.Fatalf("repair: %v, want a rolled-back failure", err)
	}
	d, err := state.Open(h.e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if in, err := readIntent(d); err != nil || !slices.Equal(in.Chains, []string{"IPv4 nat SVCNAT-SEP-KILLED"}) {
		t.Fatalf("after a rolled-back repair, applying.json names %v (%v)", in.Chains, err)
	}
}
