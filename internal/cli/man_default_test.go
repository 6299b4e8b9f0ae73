package cli

import (
	"strings"
	"testing"
)

// A flag whose zero value means "not given" shows no default on the man
// page: --to 0 is no generation, --confirm-timeout 0s no confirmation.
func TestManPageShowsNoZeroDefault(t *testing.T) {
	page, errs, code := run(t, "man")
	if code != ExitOK {
		t.Fatalf("svcnat man: exit %d\n%s", code, errs)
	}
	for _, bad := range []string{"(default: 0)", "(default: 0s)"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page shows %s", bad)
		}
	}
	if !strings.Contains(page, "(default: 10s)") {
		t.Error("the page lost a default that is not zero (--lock-timeout 10s)")
	}
}
