//go:build linux

package integration

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// svcnat reconcile beside apply --confirm-timeout: while the apply awaits
// confirmation the daemon applies nothing and says why; when the watcher
// reverts it, the daemon does not apply the reverted configuration again
// (it says why at every pass and counts it as an error) but repairs a
// flush to the rules the revert left, and it applies the configuration
// once that changes.
func TestReconcileKeepsARevert(t *testing.T) {
	for _, backend := range []string{"nft", "legacy", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tl, web, dns := remoteLab(t, backend)
			before := tl.owned(t)
			d := startDaemon(t, tl.SV, "--interval", "1s", "--metrics-addr", "127.0.0.1:9823")
			d.await(t, time.Minute, "msg=no changes", "event=start")
			// Its metrics tell the recorded generation from the start.
			mf := scrape(t, tl.Node, "http://127.0.0.1:9823/metrics")
			if metric(mf, "svcnat_generation") != 1 || metric(mf, "svcnat_last_apply_success") != 1 || metric(mf, "svcnat_last_apply_timestamp_seconds") <= 0 {
				t.Fatalf("metrics of a daemon that found nothing to change: generation %v, success %v, time %v", metric(mf, "svcnat_generation"),
					metric(mf, "svcnat_last_apply_success"), metric(mf, "svcnat_last_apply_timestamp_seconds"))
			}

			// The operator edits the files and applies them with a
			// deadline before the daemon sees the edit (it is stopped
			// meanwhile: otherwise it would apply the edit itself).
			if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			writeCfgFile(t, tl.SV.Config, "10-services.hcl", web.HCL()+dns.HCL())
			out := tl.SV.MustRun(t, 0, "apply", "-auto-approve", "--confirm-timeout", "3s")
			d.cmd.Process.Signal(syscall.SIGCONT)
			if !strings.Contains(out.Stdout+out.Stderr, "awaits confirmation") {
				t.Fatalf("apply --confirm-timeout did not leave a pending apply:\n%s", out)
			}
			remoteExpect(t, tl, "backend-1")
			d.await(t, 30*time.Second, "msg=an apply awaits confirmation; applying nothing")

			waitFor(t, 30*time.Second, "the watcher's revert", func() bool { return len(watcherPIDs(tl.SV.StateDir)) == 0 })
			// Three passes after the revert: each holds, none applies.
			for i := 0; i < 3; i++ {
				d.await(t, 30*time.Second, "msg=the apply of this configuration was reverted", "event=tick",
					"generation=2", "reason=not confirmed within 3s")
			}
			if got := tl.owned(t); got != before {
				t.Fatalf("reconcile applied the reverted configuration again:\n%s", applyDiff(before, got))
			}
			remoteExpect(t, tl, "backend-0")
			if show := tl.SV.MustRun(t, 0, "show").Stdout; !strings.Contains(show, "Generation 3 applied") {
				t.Fatalf("something was applied after the revert:\n%s", show)
			}
			mf = scrape(t, tl.Node, "http://127.0.0.1:9823/metrics")
			if metric(mf, "svcnat_reconcile_errors_total") < 3 || metric(mf, "svcnat_generation") != 3 ||
				metric(mf, "svcnat_held", "reason=reverted") != 1 || metric(mf, "svcnat_held", "reason=pending") != 0 {
				t.Fatalf("metrics while the revert holds: errors %v, generation %v, held %v",
					metric(mf, "svcnat_reconcile_errors_total"), metric(mf, "svcnat_generation"), metric(mf, "svcnat_held", "reason=reverted"))
			}

			// A firewalld --reload style flush during the hold (on
			// nftables, svcnat's table deleted): the
			// daemon puts back the rules the revert left (generation
			// 3's), records nothing, and still holds.
			if backend == "nftables" {
				tl.Node.Run(t, "nft", "delete", "table", "ip", nftTableName)
			} else {
				ipt := "iptables-" + backend
				tl.Node.Run(t, ipt, "-t", "nat", "-F")
				tl.Node.Run(t, ipt, "-t", "nat", "-X")
			}
			d.await(t, 30*time.Second, "msg=repaired the rules of the reverted-to generation", "generation=3", "drift=true")
			if got := tl.owned(t); got != before {
				t.Fatalf("the flush during the hold was not repaired to the revert's rules:\n%s", applyDiff(before, got))
			}
			remoteExpect(t, tl, "backend-0")
			d.await(t, 30*time.Second, "msg=the apply of this configuration was reverted", "generation=2")
			if got := tl.owned(t); got != before {
				t.Fatalf("reconcile applied the reverted configuration after the repair:\n%s", applyDiff(before, got))
			}
			if show := tl.SV.MustRun(t, 0, "show").Stdout; !strings.Contains(show, "Generation 3 applied") {
				t.Fatalf("the repair recorded a generation:\n%s", show)
			}
			if _, err := tl.Node.HTTPGet("http://127.0.0.1:9823/healthz"); err == nil {
				t.Fatal("healthz answers 200 while the configuration on disk is held")
			}

			// Another configuration is applied.
			writeCfgFile(t, tl.SV.Config, "10-services.hcl", web.HCL()+dnsTo(dns, 0).HCL())
			// (A tick may see it before the file event settles.)
			rec := d.await(t, 30*time.Second, "msg=applied", "drift=false")
			if fmt.Sprint(rec["generation"]) != "4" {
				t.Fatalf("the changed configuration was applied as generation %v, want 4", rec["generation"])
			}
			remoteExpect(t, tl, "backend-1")
		})
	}
}
