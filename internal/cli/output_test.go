package cli

import (
	"bytes"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
)

// runTo runs svcnat on the fake host with stdout going to w.
func (h *fakeHost) runTo(w io.Writer, args ...string) (stderr string, code int) {
	h.t.Helper()
	var errb bytes.Buffer
	full := append([]string{"--no-color", "--node", "n1", "--state-dir", h.stateDir, "-c", h.config}, args...)
	code = Run(h.env(strings.NewReader(""), w, &errb), full)
	return errb.String(), code
}

// closedPipe is a pipe whose reader has gone, as `svcnat plan | head -1`
// leaves it: every write fails with EPIPE.
func closedPipe(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() { w.Close() })
	return w
}

// fullDisk takes room bytes, then fails every write as a full disk does.
type fullDisk struct {
	room int
	got  bytes.Buffer
}

func (d *fullDisk) Write(b []byte) (int, error) {
	if len(b) > d.room {
		n := d.room
		d.got.Write(b[:n])
		d.room = 0
		return n, syscall.ENOSPC
	}
	d.room -= len(b)
	return d.got.Write(b)
}

func TestPlanWhoseOutputIsLostFails(t *testing.T) {
	h := newFakeHost(t)
	for _, args := range [][]string{{"plan"}, {"plan", "--detailed-exitcode"}, {"plan", "--json"}} {
		errs, code := h.runTo(closedPipe(t), args...)
		if code != ExitError || !strings.Contains(errs, "svcnat: error: writing the plan: ") || !strings.Contains(errs, "broken pipe") {
			t.Errorf("%s to a closed pipe: exit %d, want 1\n%s", strings.Join(args, " "), code, errs)
		}
		errs, code = h.runTo(&fullDisk{room: 100}, args...)
		if code != ExitError || !strings.Contains(errs, "no space left on device") {
			t.Errorf("%s to a full disk: exit %d, want 1\n%s", strings.Join(args, " "), code, errs)
		}
	}
}

// An apply whose plan could not be shown commits nothing: nobody saw it.
func TestApplyWhosePlanIsLostChangesNothing(t *testing.T) {
	h := newFakeHost(t)
	before := h.rules()
	for _, args := range [][]string{{"apply", "-auto-approve"}, {"apply", "-auto-approve", "--json"}} {
		errs, code := h.runTo(closedPipe(t), args...)
		if code != ExitError || !strings.Contains(errs, "svcnat: error: apply: writing the plan: ") || !strings.Contains(errs, "nothing was changed") {
			t.Fatalf("%s to a closed pipe: exit %d\n%s", strings.Join(args, " "), code, errs)
		}
	}
	if h.rules() != before || h.generation() != 0 {
		t.Fatal("an apply whose plan was lost changed something")
	}
}

// When the output is lost after the commit, the error says what was done.
func TestApplyWhoseReportIsLostSaysWhatWasDone(t *testing.T) {
	h := newFakeHost(t)
	plan := h.must(ExitOK, "plan")
	disk := &fullDisk{room: len(plan)}
	errs, code := h.runTo(disk, "apply", "-auto-approve")
	if code != ExitError || disk.got.String() != plan ||
		!strings.Contains(errs, "svcnat: error: apply went through (generation 1 is recorded in "+h.stateDir+"), but its output was lost: ") ||
		!strings.Contains(errs, "no space left on device") {
		t.Fatalf("apply to a full disk: exit %d\n%s", code, errs)
	}
	if h.generation() != 1 {
		t.Fatal("the apply was not recorded")
	}
}

// Every command's output counts: show, validate --json.
func TestOutputLostFailsEveryCommand(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	for _, args := range [][]string{{"show"}, {"validate"}, {"validate", "--json"}, {"render"}} {
		errs, code := h.runTo(closedPipe(t), args...)
		if code != ExitError || !strings.Contains(errs, "svcnat: error: writing ") || !strings.Contains(errs, "broken pipe") {
			t.Errorf("%s to a closed pipe: exit %d, want 1\n%s", strings.Join(args, " "), code, errs)
		}
	}
}

// validate --json of a broken configuration whose report is lost says
// both.
func TestValidateJSONReportLost(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.config, "nginx.hcl", "service {")
	errs, code := h.runTo(closedPipe(t), "validate", "--json")
	if code != ExitError || !strings.Contains(errs, "problem") || !strings.Contains(errs, "writing the JSON report failed: ") {
		t.Fatalf("validate --json to a closed pipe: exit %d\n%s", code, errs)
	}
}

// failOn fails, as a full disk would, the first write holding substr.
type failOn struct {
	substr string
	got    bytes.Buffer
}

func (f *failOn) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(f.substr)) {
		return 0, syscall.ENOSPC
	}
	return f.got.Write(b)
}

// A pending apply whose "how to confirm" is lost says it on stderr.
func TestPendingApplyWhoseNoticeIsLost(t *testing.T) {
	h := newFakeHost(t)
	errs, code := h.runTo(&failOn{substr: "awaits confirmation"}, "apply", "-auto-approve", "--confirm-timeout", "1h")
	if code != ExitError || !strings.Contains(errs, "apply went through (generation 1 is recorded in "+h.stateDir+" and awaits confirmation: svcnat confirm ") ||
		!strings.Contains(errs, "no space left on device") {
		t.Fatalf("apply --confirm-timeout whose notice is lost: exit %d\n%s", code, errs)
	}
	h.must(ExitOK, "confirm")
	h.watcher(0)
}
