package applier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
	"github.com/svcnat/svcnat/internal/linediff"
	"github.com/svcnat/svcnat/internal/planner"
)

const prefix = "SVCNAT"

// foreign is what Docker and an operator leave in a namespace; svcnat
// must never change a byte of it.
const foreign = `*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
*filter
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
`

// services renders n ClusterIP services with eps endpoints each.
func services(t *testing.T, n, eps int) map[backend.Family]*backend.Ruleset {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "service \"default/svc%d\" {\n  cluster_ips = [\"10.32.%d.%d\"]\n  port {\n    port = 80\n  }\n", i, i/250, i%250+1)
		for e := 0; e < eps; e++ {
			fmt.Fprintf(&b, "  endpoint {\n    address = \"10.64.%d.%d\"\n  }\n", i/250, (i%250)*0+e+1)
		}
		b.WriteString("}\n")
	}
	cfg, diags := config.Parse(map[string][]byte{"t.hcl": []byte(b.String())})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	res, err := render.Render(cfg, render.Options{Node: "n1", RandomFully: true})
	if err != nil {
		t.Fatal(err)
	}
	return res.Rulesets
}

func newFake(t *testing.T) *iptables.Fake {
	t.Helper()
	f := iptables.NewFake()
	if err := f.Restore(backend.IPv4, []byte(foreign), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	return f
}

func save(t *testing.T, k *iptables.Fake) *backend.Ruleset {
	t.Helper()
	rs, err := k.Save(backend.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// applyNow applies p with the live rules as they are now, as the engine
// does with the dump it planned from, under its lock.
func applyNow(t *testing.T, ctx context.Context, k *iptables.Fake, p *planner.Plan, opts Options) error {
	t.Helper()
	return Apply(ctx, k, p, map[backend.Family]*backend.Ruleset{backend.IPv4: save(t, k)}, opts)
}

func plan(t *testing.T, k *iptables.Fake, desired map[backend.Family]*backend.Ruleset) *planner.Plan {
	t.Helper()
	return planner.New(prefix, "nft", desired, map[backend.Family]*backend.Ruleset{backend.IPv4: save(t, k)})
}

// foreignOf prints every rule svcnat does not own.
func foreignOf(rs *backend.Ruleset) string { return rs.Foreign(prefix).Text() }

func TestApplyConvergesAndLeavesForeignRules(t *testing.T) {
	k := newFake(t)
	before := foreignOf(save(t, k))
	p := plan(t, k, services(t, 3, 2))
	if p.Empty() {
		t.Fatal("plan on an empty host is empty")
	}
	if err := applyNow(t, context.Background(), k, p, Options{}); err != nil {
		t.Fatal(err)
	}
	if again := plan(t, k, services(t, 3, 2)); !again.Empty() {
		t.Fatalf("plan after apply not empty: %+v", again.Summary())
	}
	if after := foreignOf(save(t, k)); after != before {
		t.Fatalf("foreign rules changed:\n%s", linediff.Unified("rules", before, after))
	}
	// Jumps are at the top of the built-in chains, Docker's after them.
	pre := save(t, k).Table("nat").Chain("PREROUTING").Rules
	if !strings.HasPrefix(pre[0].Target(), prefix) || pre[len(pre)-1].Target() != "DOCKER" {
		t.Fatalf("PREROUTING order: %v", pre)
	}
}

func TestApplyWritesOnlyWhatChanged(t *testing.T) {
	k := newFake(t)
	if err := applyNow(t, context.Background(), k, plan(t, k, services(t, 3, 2)), Options{}); err != nil {
		t.Fatal(err)
	}
	n := len(k.Restores())
	p := plan(t, k, services(t, 3, 3)) // a third endpoint everywhere
	if err := applyNow(t, context.Background(), k, p, Options{}); err != nil {
		t.Fatal(err)
	}
	rs := k.Restores()[n:]
	if len(rs) != 1 {
		t.Fatalf("%d restores for one change, want one transaction", len(rs))
	}
	payload := string(rs[0].Payload)
	for _, forbidden := range []string{"DOCKER", "POSTROUTING -s 172.17", "*filter", "SVCNAT-MARK-MASQ - [0:0]"} {
		if strings.Contains(payload, forbidden) {
			t.Errorf("payload names %q, which did not change:\n%s", forbidden, payload)
		}
	}
}

func TestApplyRollsBackWhenARestoreFails(t *testing.T) {
	k := newFake(t)
	if err := applyNow(t, context.Background(), k, plan(t, k, services(t, 2, 1)), Options{}); err != nil {
		t.Fatal(err)
	}
	before := save(t, k).Text()
	// Refuse the rewrite of the SERVICES chain: the chains before it were
	// already flushed and filled in the same (discarded) table, so this
	// also checks that a failure mid-table leaves nothing behind.
	k.FailWhen(func(line string) bool { return strings.HasPrefix(line, "-A SVCNAT-SERVICES") })
	err := applyNow(t, context.Background(), k, plan(t, k, services(t, 1, 3)), Options{})
	k.FailWhen(nil)
	var ae *Error
	if !errors.As(err, &ae) || !ae.RolledBack || !errors.Is(err, iptables.ErrInjected) {
		t.Fatalf("err = %v, want a rolled-back *Error wrapping the injected failure", err)
	}
	if after := save(t, k).Text(); after != before {
		t.Fatalf("rules differ after a failed apply:\n%s", linediff.Unified("rules", before, after))
	}
}

func TestApplyStagesLargeCreations(t *testing.T) {
	k := newFake(t)
	desired := services(t, 20, 2) // 20 SVC + 40 SEP + fixed chains
	if err := applyNow(t, context.Background(), k, plan(t, k, desired), Options{Batch: 10}); err != nil {
		t.Fatal(err)
	}
	rs := k.Restores()[1:] // after the foreign seed
	if len(rs) < 6 {
		t.Fatalf("%d transactions, want the creations staged in batches of 10", len(rs))
	}
	// Only the last transaction may touch a built-in chain: staged chains
	// are unreferenced, so traffic sees nothing until it.
	for _, r := range rs[:len(rs)-1] {
		for _, l := range strings.Split(string(r.Payload), "\n") {
			for _, b := range []string{"PREROUTING", "OUTPUT", "POSTROUTING", "INPUT", "FORWARD"} {
				if strings.HasPrefix(l, "-A "+b+" ") || strings.HasPrefix(l, "-I "+b+" ") {
					t.Fatalf("staging transaction touches %s:\n%s", b, r.Payload)
				}
			}
		}
	}
	if !plan(t, k, desired).Empty() {
		t.Fatal("staged apply did not converge")
	}
}

func TestApplyStagedFailureRemovesStagedChains(t *testing.T) {
	k := newFake(t)
	before := save(t, k).Text()
	k.FailWhen(func(line string) bool { return strings.HasPrefix(line, "-I PREROUTING") })
	err := applyNow(t, context.Background(), k, plan(t, k, services(t, 20, 2)), Options{Batch: 10})
	k.FailWhen(nil)
	if err == nil {
		t.Fatal("apply succeeded despite the failing final transaction")
	}
	if after := save(t, k).Text(); after != before {
		t.Fatalf("staged chains left behind:\n%s", linediff.Unified("rules", before, after))
	}
}

func TestApplyInterruptedRollsBack(t *testing.T) {
	k := newFake(t)
	if err := applyNow(t, context.Background(), k, plan(t, k, services(t, 2, 1)), Options{}); err != nil {
		t.Fatal(err)
	}
	before := save(t, k).Text()
	ctx, cancel := context.WithCancel(context.Background())
	// The signal arrives while the commit transaction runs: it is let
	// finish, then the apply stops before verifying and rolls back.
	opts := Options{Step: func(s Step) error {
		if s.Kind == Commit {
			cancel()
		}
		return nil
	}}
	err := applyNow(t, ctx, k, plan(t, k, services(t, 3, 2)), opts)
	var ae *Error
	if !errors.As(err, &ae) || !ae.RolledBack {
		t.Fatalf("err = %v, want a rolled-back interruption", err)
	}
	if after := save(t, k).Text(); after != before {
		t.Fatalf("rules differ after an interrupted apply:\n%s", linediff.Unified("rules", before, after))
	}
}

// Docker changing its own chain while svcnat applies is not svcnat's
// business: the apply succeeds and keeps Docker's change.
func TestApplyToleratesForeignChangesElsewhere(t *testing.T) {
	k := newFake(t)
	opts := Options{Step: func(s Step) error {
		if s.Kind == Check {
			return k.Restore(backend.IPv4, []byte("*nat\n-A DOCKER -i docker1 -j RETURN\nCOMMIT\n"), iptables.NoFlushTables)
		}
		return nil
	}}
	if err := applyNow(t, context.Background(), k, plan(t, k, services(t, 2, 1)), opts); err != nil {
		t.Fatalf("a foreign change in DOCKER failed the apply: %v", err)
	}
	if !strings.Contains(foreignOf(save(t, k)), "-A DOCKER -i docker1 -j RETURN") {
		t.Fatal("Docker's concurrent rule is gone")
	}
}

// A small change is verified by reading back the chains it touched, not
// by a full save; a foreign rule added to a touched built-in chain while
// it ran is caught there, and the change rolled back.
func TestVerifyReadsTouchedChainsOnly(t *testing.T) {
	k := newFake(t)
	if err := applyNow(t, context.Background(), k, plan(t, k, services(t, 3, 2)), Options{}); err != nil {
		t.Fatal(err)
	}
	p := plan(t, k, services(t, 3, 3))
	live := map[backend.Family]*backend.Ruleset{backend.IPv4: save(t, k)}
	saves, lists := k.Reads()
	if err := Apply(context.Background(), k, p, live, Options{ListLimit: iptables.NewFake().Limits().ListLimit}); err != nil {
		t.Fatal(err)
	}
	s2, l2 := k.Reads()
	if s2 != saves || l2-lists != len(p.Changes) {
		t.Fatalf("verifying %d changed chains took %d saves and %d single-chain reads", len(p.Changes), s2-saves, l2-lists)
	}
	before := save(t, k).Text()
	p = plan(t, k, services(t, 4, 2)) // a new service: PREROUTING's jumps are not touched, SERVICES is
	live = map[backend.Family]*backend.Ruleset{backend.IPv4: save(t, k)}
	sneak := Options{ListLimit: iptables.NewFake().Limits().ListLimit, Step: func(s Step) error {
		if s.Kind == Check {
			return k.Restore(backend.IPv4, []byte("*nat\n-A SVCNAT-SERVICES -j RETURN\nCOMMIT\n"), iptables.NoFlushTables)
		}
		return nil
	}}
	err := Apply(context.Background(), k, p, live, sneak)
	var ae *Error
	if !errors.As(err, &ae) || !ae.RolledBack || !strings.Contains(err.Error(), "SVCNAT-SERVICES") {
		t.Fatalf("err = %v, want the extra rule in a touched chain found and the change rolled back", err)
	}
	if after := save(t, k).Text(); after != before {
		t.Fatalf("rules differ after the rolled-back apply:\n%s", linediff.Unified("rules", before, after))
	}
}
