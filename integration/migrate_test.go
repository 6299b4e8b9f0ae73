package integration

// Real-kernel test of apply --backend moving svcnat's rules between
// backends (README "Migrating between backends").

import (
	"strings"
	"sync"
	"testing"

	"github.com/svcnat/svcnat/integration/netlab"
)

// TestMigrateKeepsTraffic: rules applied on iptables-nft move to nftables
// with apply --backend nftables while a client keeps connecting to the
// cluster IP (every connection answered, during and after), leave no
// svcnat chain in iptables and svcnat's table in nftables, and move back.
func TestMigrateKeepsTraffic(t *testing.T) {
	t.Parallel()
	tl := newTrafficLab(t, "nft", netlab.Options{Backends: 1, HTTPPorts: []int{80}, UDPPorts: []int{}})
	tl.apply(t, nil, trWeb("default/web", "10.32.0.61", trEndpoints("node1", trBackendIP4(0))...))
	url, what := trURL("10.32.0.61", 80), "default/web 10.32.0.61:80 during a migration"

	// migrate runs apply --backend to while the client connects, one
	// fresh connection after another, and fails on any that is not
	// answered.
	migrate := func(to string) {
		t.Helper()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var tries int
		var failed []error
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tries < 100000 {
				select {
				case <-stop:
					return
				default:
				}
				tries++
				if _, err := tl.Client.NS.HTTPGet(url); err != nil {
					failed = append(failed, err)
				}
			}
		}()
		tl.SV.Backend = to
		// plan previews the move on the real kernel: both plans, and
		// nothing written (the old set still answers, checked below).
		if p := tl.SV.MustRun(t, 2, "plan", "--detailed-exitcode"); !strings.Contains(p.Stdout, "(backend "+to+",") ||
			!strings.Contains(p.Stdout, "Then svcnat will remove its rules from the backend it moves them from") {
			t.Fatalf("plan --backend %s before the move: want the migration's two plans:\n%s", to, p)
		}
		r := tl.SV.MustRun(t, 0, "apply", "-auto-approve")
		close(stop)
		wg.Wait()
		if len(failed) > 0 || tries == 0 {
			t.Fatalf("%s: %d of %d connections failed while migrating to %s (first: %v)\n%s", what, len(failed), tries, to, failed, r)
		}
		if !strings.Contains(r.Stdout, "Removed svcnat's ") {
			t.Fatalf("apply --backend %s did not say it removed the old set:\n%s", to, r)
		}
		t.Logf("migrated to %s: %d connections, all answered", to, tries)
		trExpectFrom(t, trGet(t, tl.Client.NS, url, what), what, "backend-0")
		tl.SV.Backend = "auto"
		tl.SV.MustRun(t, 0, "plan", "--detailed-exitcode")
	}

	migrate("nftables")
	if out, err := tl.Node.Exec("iptables-nft-save"); err != nil || strings.Contains(out, trPrefix+"-") {
		t.Fatalf("netns %s: iptables-nft-save after the migration (%v) still holds svcnat chains:\n%s", tl.Node.Name, err, out)
	}
	if out, err := tl.Node.Exec("nft", "list", "table", "ip", "svcnat"); err != nil || !strings.Contains(out, "table ip svcnat") {
		t.Fatalf("netns %s: nft list table ip svcnat after the migration: %v\n%s", tl.Node.Name, err, out)
	}

	migrate("iptables-nft")
	if out, err := tl.Node.Exec("nft", "list", "table", "ip", "svcnat"); err == nil {
		t.Fatalf("netns %s: svcnat's table is still there after migrating back:\n%s", tl.Node.Name, out)
	}
	if out, err := tl.Node.Exec("iptables-nft-save", "-t", "nat"); err != nil || !strings.Contains(out, ":"+trPrefix+"-SERVICES") {
		t.Fatalf("netns %s: iptables-nft-save after migrating back (%v) has no %s-SERVICES:\n%s", tl.Node.Name, err, trPrefix, out)
	}
}
