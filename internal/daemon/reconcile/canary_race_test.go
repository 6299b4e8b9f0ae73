package reconcile

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// flushAfterRead is the fake kernel with a table flush that, once armed,
// lands right after the next read of the live IPv4 rules: a firewalld
// reload racing a pass.
type flushAfterRead struct {
	*iptables.Fake
	armed atomic.Bool
}

func (k *flushAfterRead) Read(fam backend.Family, like *backend.Ruleset) (*backend.Ruleset, error) {
	rs, err := k.Fake.Read(fam, like)
	if fam == backend.IPv4 && k.armed.CompareAndSwap(true, false) {
		if ferr := k.Fake.Restore(backend.IPv4, []byte("*nat\n-F\n-X SVCNAT-CANARY\nCOMMIT\n"), iptables.NoFlushTables); ferr != nil {
			panic(ferr)
		}
	}
	return rs, err
}

// A flush that lands after a pass read the live rules, and so is not in
// its plan, is still repaired at once: the pass made the canaries before
// it read the rules, so the flush takes the canary too and the canary
// check sees it. (The canaries used to be made after the plan: the pass
// put back the canary the flush took, and the flushed rules stayed until
// the next interval, here an hour.)
func TestFlushDuringAPassIsRepaired(t *testing.T) {
	k := &flushAfterRead{Fake: iptables.NewFake()}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.hcl"), []byte(web), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startLoopOn(t, t.TempDir(), dir, k.Fake, time.Hour, func(l *Loop) { l.Engine.Kernel = k })
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")
	applied := h.owned(t)

	// One pass, whose read the flush follows; then nothing but the canary
	// check can start another within the hour.
	k.armed.Store(true)
	h.reload <- struct{}{}
	at = h.logs.await(t, at, "no changes", "event=reload")
	at = h.logs.await(t, at, "canary chain gone", "tables=IPv4 nat")
	h.logs.await(t, at, "applied", "event=canary lost", "drift=true", "generation=2")
	if got := h.owned(t); got != applied {
		t.Fatalf("after the repair:\n%s\nwant:\n%s", got, applied)
	}
}
