package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// confirm and revert settle an apply recorded in the state directory: one
// that does not exist holds none, and is not created (plan does not create
// one either).
func TestConfirmDoesNotCreateTheStateDir(t *testing.T) {
	h := newFakeHost(t)
	for _, cmd := range []string{"confirm", "revert"} {
		h.stateDir = filepath.Join(t.TempDir(), "nowhere")
		_, errs, code := h.run(cmd)
		if code != ExitError || !strings.Contains(errs, "svcnat: error: no apply awaits confirmation: state directory "+h.stateDir+" does not exist") ||
			!strings.Contains(errs, "svcnat: hint: ") {
			t.Errorf("%s: exit %d\n%s", cmd, code, errs)
		}
		if _, err := os.Lstat(h.stateDir); !os.IsNotExist(err) {
			t.Errorf("%s created the state directory: %v", cmd, err)
		}
	}
}

// A state directory another user could change is refused by every
// command that reads or writes it, with the hint that fixes it.
func TestUntrustedStateDirIsRefused(t *testing.T) {
	h := newFakeHost(t)
	os.Chmod(h.stateDir, 0o777)
	for _, args := range [][]string{{"show"}, {"confirm"}, {"rollback", "-auto-approve"}, {"apply", "-auto-approve"}} {
		_, errs, code := h.run(args...)
		if code != ExitError || !strings.Contains(errs, "svcnat: error: state directory "+h.stateDir+" is writable by group and others (mode 0777)") ||
			!strings.Contains(errs, "svcnat: hint: chmod 700 "+h.stateDir) {
			t.Errorf("%v: exit %d\n%s", args, code, errs)
		}
	}
	if strings.Contains(h.rules(), "SVCNAT") {
		t.Fatal("an apply went through with an untrusted state directory")
	}
}
