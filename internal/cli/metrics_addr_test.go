package cli

import (
	"strings"
	"testing"
	"time"
)

// reconcile --metrics-addr takes an IP address and port or a port alone:
// a host name is refused before the first pass (exit 1, nothing applied),
// since Go would resolve it outside the --netns namespace.
func TestMetricsAddrRefusesHostNames(t *testing.T) {
	h := newFakeHost(t)
	before := h.rules()
	type result struct {
		errs string
		code int
	}
	done := make(chan result, 1)
	go func() {
		_, errs, code := h.run("reconcile", "--interval", "1h", "--metrics-addr", "localhost:9823")
		done <- result{errs, code}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute): // a fail-safe, not a measure: a refusal is immediate
		t.Fatal("reconcile started with --metrics-addr localhost:9823 instead of refusing it")
	}
	if r.code != ExitError || !strings.Contains(r.errs, `svcnat: error: --metrics-addr "localhost:9823": "localhost" is not an IP address`) ||
		!strings.Contains(r.errs, "hint: give an IP address and port (127.0.0.1:9823) or a port alone (:9823") {
		t.Fatalf("exit %d\n%s", r.code, r.errs)
	}
	if h.rules() != before || h.generation() != 0 {
		t.Fatal("a refused reconcile changed the rules or the record")
	}
}
