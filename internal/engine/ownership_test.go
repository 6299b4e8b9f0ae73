package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/applier"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// cni is what the CNI portmap plugin leaves in nat: chains named CNI-*,
// and its jumps from PREROUTING, OUTPUT and POSTROUTING.
const cni = `*nat
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-SNAT - [0:0]
:CNI-DN-6f2b8c1e2a0b4d5e9a7c1 - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-SNAT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"podman\"" -m multiport --dports 8080 -j CNI-DN-6f2b8c1e2a0b4d5e9a7c1
-A CNI-DN-6f2b8c1e2a0b4d5e9a7c1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80
COMMIT
`

const cniPrefix = "settings {\n  chain_prefix = \"CNI\"\n}\n"

var cniChains = []string{"IPv4 nat CNI-DN-6f2b8c1e2a0b4d5e9a7c1", "IPv4 nat CNI-HOSTPORT-DNAT", "IPv4 nat CNI-HOSTPORT-SNAT"}

func (h *testHost) restore(t *testing.T, dump string) {
	t.Helper()
	if err := h.fake.Restore(backend.IPv4, []byte(dump), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
}

// TestApplyRefusesAnotherProgramsChains: chain_prefix CNI on a host where
// the CNI plugins wrote CNI-* chains: apply and plan refuse naming them,
// nothing changes, destroy refuses too; --adopt takes them over.
func TestApplyRefusesAnotherProgramsChains(t *testing.T) {
	h := newHost(t)
	h.restore(t, cni)
	err := refusedBoth(t, h, cniPrefix, web)
	var ue *UnrecordedError
	if !errors.As(err, &ue) || !slices.Equal(ue.Chains, cniChains) || ue.Op != OpApply ||
		!strings.Contains(err.Error(), "CNI-* chains that "+h.e.StateDir+" did not record are in the kernel") {
		t.Fatalf("apply with prefix CNI: %v", err)
	}
	before := h.text(t)
	if _, err := h.e.Destroy(context.Background(), "CNI"); !errors.As(err, &ue) || ue.Op != OpDestroy || !slices.Equal(ue.Chains, cniChains) {
		t.Fatalf("destroy with prefix CNI: %v", err)
	}
	if h.text(t) != before || h.state(t).Generation != 0 {
		t.Fatal("a refused destroy changed something")
	}

	h.e.Adopt = true
	res := h.mustApply(t, parse(t, cniPrefix, web))
	if res.Generation != 1 || strings.Contains(h.text(t), "CNI-HOSTPORT-DNAT") {
		t.Fatalf("adopting apply: %+v\n%s", res, h.text(t))
	}
	// Adopted, they are recorded: no --adopt needed from now on.
	h.e.Adopt = false
	h.mustApply(t, parse(t, cniPrefix, web, dns))
	if _, err := h.e.Destroy(context.Background(), "CNI"); err != nil {
		t.Fatal(err)
	}
}

// TestKubePrefixOnAHostWithoutKubeProxy: kube-proxy's names work where
// no kube-proxy wrote any.
func TestKubePrefixOnAHostWithoutKubeProxy(t *testing.T) {
	h := newHost(t)
	kube := "settings {\n  chain_prefix = \"KUBE\"\n}\n"
	h.mustApply(t, parse(t, kube, web))
	h.mustApply(t, parse(t, kube, web, dns))
	h.mustApply(t, parse(t, kube, dns))
	if _, err := h.e.Rollback(context.Background(), "KUBE"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Destroy(context.Background(), "KUBE"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h.text(t), "KUBE-") {
		t.Fatalf("destroy left KUBE chains:\n%s", h.text(t))
	}
	// kube-proxy starts: its chains are not svcnat's.
	h.restore(t, "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n")
	var ke *KubeProxyError
	if err := refusedBoth(t, h, kube, web); !errors.As(err, &ke) || ke.Where != "IPv4 nat KUBE-PROXY-CANARY" {
		t.Fatalf("apply over kube-proxy's chains: %v", err)
	}
}

// errKilled stands for a SIGKILL: a panic leaves the kernel as it is at
// that step, as a killed process does (the applier cannot roll back).
var errKilled = errors.New("killed")

// killedApply applies cfg and "kills" it at the first step of kind.
func (h *testHost) killedApply(t *testing.T, cfg string, kind applier.StepKind) {
	t.Helper()
	hooks, batch := h.e.Hooks, h.e.Batch
	defer func() { h.e.Hooks, h.e.Batch = hooks, batch }()
	h.e.Batch = 1
	h.e.Hooks.Step = func(s Step) {
		if s.Kind == kind {
			panic(errKilled)
		}
	}
	defer func() {
		if r := recover(); r != errKilled {
			t.Fatalf("the apply was not killed: %v", r)
		}
	}()
	h.e.Apply(context.Background(), parse(t, cfg), "n1")
}

// TestKilledApplysChainsAreItsOwn: the chains an apply killed with
// SIGKILL left (staged, or committed but not recorded) are this state
// directory's: the next apply clears or records them without --adopt,
// also when the killed apply was the first.
func TestKilledApplysChainsAreItsOwn(t *testing.T) {
	for _, c := range []struct {
		name  string
		first bool // the killed apply was the first of the state directory
		at    applier.StepKind
	}{
		{"staged", false, StepCommit},
		{"staged, first apply", true, StepCommit},
		{"committed, not recorded", false, StepVerify},
		{"committed, first apply", true, StepVerify},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHost(t)
			if !c.first {
				h.mustApply(t, parse(t, web))
			}
			h.killedApply(t, web+dns, c.at)
			if c.at == StepCommit {
				p, err := h.e.Plan(parse(t, web), "n1")
				if err != nil || len(p.Interrupted) == 0 {
					t.Fatalf("the killed apply left no chains: %v", err)
				}
			}
			res := h.mustApply(t, parse(t, web))
			if p, err := h.e.Plan(parse(t, web), "n1"); err != nil || !p.Empty() || len(p.Interrupted) > 0 {
				t.Fatalf("after the next apply (%+v): %v, interrupted %v", res, err, p.Interrupted)
			}
		})
	}
}

// TestNamespaceOwnerRecord: a second state directory may not take the
// chains the first wrote in the namespace (nor another program's), unless
// it adopts them; once the first destroyed them, any may apply.
func TestNamespaceOwnerRecord(t *testing.T) {
	h := newHost(t)
	h.e.RuntimeDir = t.TempDir()
	first := h.e.StateDir
	h.mustApply(t, parse(t, web))
	second := filepath.Join(t.TempDir(), "second")
	h.e.StateDir = second
	var oe *OwnerError
	if err := refusedBoth(t, h, web, dns); !errors.As(err, &oe) || oe.Owner != first ||
		err.Error() != "the SVCNAT-* chains in this network namespace were written by svcnat with state directory "+first+", not "+second+"; nothing was changed" {
		t.Fatalf("apply from a second state directory: %v", err)
	}
	h.e.Adopt = true
	h.mustApply(t, parse(t, web, dns))
	h.e.Adopt = false
	h.e.StateDir = first
	if _, err := h.e.Destroy(context.Background(), "SVCNAT"); !errors.As(err, &oe) || oe.Owner != second {
		t.Fatalf("destroy from the first state directory after the second adopted: %v", err)
	}
	h.e.StateDir = second
	if _, err := h.e.Destroy(context.Background(), "SVCNAT"); err != nil {
		t.Fatal(err)
	}
	h.e.StateDir = first
	h.mustApply(t, parse(t, dns))
}

// TestNamespaceLockHeld: a run of another state directory waits for the
// namespace's lock, and names its holder when the wait runs out.
func TestNamespaceLockHeld(t *testing.T) {
	h := newHost(t)
	h.e.RuntimeDir = t.TempDir()
	lock, err := h.e.lockNamespace(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	other := *h.e
	other.StateDir = t.TempDir()
	other.LockTimeout = 50 * time.Millisecond
	_, err = other.Apply(context.Background(), parse(t, web), "n1")
	var le *NamespaceLockError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || le.Holder == nil || le.Holder.StateDir != h.e.StateDir {
		t.Fatalf("apply while another svcnat holds the namespace: %v", err)
	}
	lock.unlock()
	if _, err := other.Apply(context.Background(), parse(t, web), "n1"); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentStateDirsOneNamespace: ten applies of ten configurations
// with ten state directories on one namespace at once: one wins, the nine
// others are refused naming its state directory, and the live rules are
// exactly its configuration's.
func TestConcurrentStateDirsOneNamespace(t *testing.T) {
	h := newHost(t)
	h.e.RuntimeDir = t.TempDir()
	const n = 10
	cfgs, errs, dirs := make([]string, n), make([]error, n), make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		cfgs[i] = strings.Replace(web, "10.32.0.10", fmt.Sprintf("10.32.0.%d", 100+i), 1)
		e := *h.e
		e.StateDir, e.LockTimeout = t.TempDir(), time.Minute
		e.Hooks = Hooks{}
		dirs[i] = e.StateDir
		cfg := parse(t, cfgs[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.Apply(context.Background(), cfg, "n1")
		}()
	}
	wg.Wait()
	winner := slices.IndexFunc(errs, func(err error) bool { return err == nil })
	if winner < 0 {
		t.Fatalf("no apply succeeded: %v", errs)
	}
	for i, err := range errs {
		var oe *OwnerError
		if i != winner && (!errors.As(err, &oe) || oe.Owner != dirs[winner]) {
			t.Errorf("apply %d: %v, want a refusal naming %s", i, err, dirs[winner])
		}
	}
	p, err := h.e.Plan(parse(t, cfgs[winner]), "n1")
	if err != nil || !p.Empty() {
		t.Fatalf("the live rules are not apply %d's configuration: %v, %+v", winner, err, p.Summary())
	}
}
