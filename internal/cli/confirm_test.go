package cli

import (
	"io"
	"regexp"
	"strings"
	"testing"
)

// pendingID finds the pending apply's id in apply's output.
func pendingID(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`Apply ([0-9a-f]+) awaits confirmation`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no pending apply in:\n%s", out)
	}
	return m[1]
}

// Without a terminal (a CI job), apply --confirm-timeout says how to
// confirm; everything else that changes rules is refused until then, and
// svcnat confirm from another shell keeps the rules.
func TestConfirmFromAnotherShell(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	out := h.must(ExitOK, "apply", "-auto-approve", "--confirm-timeout", "1h")
	id := pendingID(t, out)
	if !strings.Contains(out, "Run svcnat confirm "+id+" to keep it") || !strings.Contains(out, "watcher: in-process svcnat-revert-"+id) {
		t.Fatalf("apply --confirm-timeout:\n%s", out)
	}
	during := h.rules()
	for _, cmd := range []string{"apply", "rollback", "destroy"} {
		_, errs, code := h.run(cmd, "-auto-approve")
		if code != ExitError || !strings.Contains(errs, "apply "+id+" (generation 2) awaits confirmation until") ||
			!strings.Contains(errs, "hint: keep it with svcnat confirm "+id+", revert it now with svcnat revert "+id+", or wait for the revert at") {
			t.Errorf("%s while pending: exit %d\n%s", cmd, code, errs)
		}
	}
	if h.rules() != during {
		t.Fatal("a refused command changed the rules")
	}
	if out := h.must(ExitOK, "show"); !strings.Contains(out, "Pending: apply "+id+" (generation 2, from generation 1)") {
		t.Fatalf("show while pending:\n%s", out)
	}
	if _, errs, code := h.run("confirm", "beef"); code != ExitError || !strings.Contains(errs, "the pending apply is "+id+", not beef") {
		t.Fatalf("confirm with another id: exit %d\n%s", code, errs)
	}
	if out := h.must(ExitOK, "confirm"); out != "Confirmed apply "+id+": generation 2 stays.\n" {
		t.Fatalf("confirm:\n%s", out)
	}
	if w := h.watcher(0); w.code != ExitOK || !strings.Contains(w.output, "settled without a revert") {
		t.Fatalf("watcher: exit %d\n%s", w.code, w.output)
	}
	if h.rules() != during || h.generation() != 2 {
		t.Fatal("a confirmed apply did not stay")
	}
	if _, errs, code := h.run("confirm"); code != ExitError || !strings.Contains(errs, "no apply awaits confirmation") || !strings.Contains(errs, "svcnat: hint: only an apply made with --confirm-timeout") {
		t.Fatalf("confirm with nothing pending: exit %d\n%s", code, errs)
	}
}

// At a terminal, apply asks; yes keeps, anything else reverts at once, and
// so does the deadline.
func TestConfirmAtThePrompt(t *testing.T) {
	for _, c := range []struct {
		name, answer string
		timeout      string
		code         int
		want         string
	}{
		{"yes", "yes\n", "1h", ExitOK, "Confirmed: generation 2 stays."},
		{"no", "no\n", "1h", ExitError, "reverted: declined at the confirmation prompt"},
		// The prompt and the watcher race to revert: either says so.
		{"deadline", "", "300ms", ExitError, "not confirmed within 300ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.must(ExitOK, "apply", "-auto-approve")
			before := h.rules()
			writeFile(t, h.config, "nginx.hcl", nginxTwo)
			h.terminal = true
			if c.answer != "" {
				h.stdin = strings.NewReader(c.answer)
			} else {
				r, w := io.Pipe() // nobody answers
				defer w.Close()
				h.stdin = r
			}
			out, errs, code := h.run("apply", "-auto-approve", "--confirm-timeout", c.timeout)
			if code != c.code || !strings.Contains(out+errs, c.want) || !strings.Contains(out, "Keep these rules?") {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
			w := h.watcher(0)
			if w.code != ExitOK {
				t.Fatalf("watcher: exit %d\n%s", w.code, w.output)
			}
			if reverted := h.rules() == before; reverted != (c.code != ExitOK) {
				t.Fatalf("rules reverted: %v\n%s", reverted, out)
			}
			if c.code != ExitOK && h.generation() != 3 || c.name == "no" && !strings.Contains(out, "Revert complete!") {
				t.Fatalf("the revert is not recorded as generation 3 (%d):\n%s", h.generation(), out)
			}
		})
	}
}

// Nobody at the prompt, nobody confirming: the watcher reverts at the
// deadline, and show says so.
func TestTheWatcherReverts(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve", "--confirm-timeout", "200ms")
	w := h.watcher(0)
	if w.code != ExitOK || !strings.Contains(w.output, `msg=reverted`) || !strings.Contains(w.output, `reason="not confirmed within 200ms"`) {
		t.Fatalf("watcher: exit %d\n%s", w.code, w.output)
	}
	if strings.Contains(h.rules(), "SVCNAT") {
		t.Fatalf("a first apply not confirmed left:\n%s", h.rules())
	}
	if _, errs, code := h.run("confirm"); code != ExitError || !strings.Contains(errs, "generation 1 was reverted at") ||
		!strings.Contains(errs, "(not confirmed within 200ms)") {
		t.Fatalf("a late confirm: exit %d\n%s", code, errs)
	}
	// Nothing is owned now; a plain apply works again.
	h.must(ExitOK, "apply", "-auto-approve")
}

func TestRevertCommand(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	before := h.rules()
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	id := pendingID(t, h.must(ExitOK, "apply", "-auto-approve", "--confirm-timeout", "1h"))
	out := h.must(ExitOK, "revert", id)
	if !strings.Contains(out, "Revert complete!") || !strings.Contains(out, "Apply "+id+" (generation 2) is reverted.") || h.rules() != before {
		t.Fatalf("revert:\n%s", out)
	}
	if out := h.must(ExitOK, "show"); !strings.Contains(out, "Generation 3 applied") || !strings.Contains(out, "reverting generation 2 (reverted with svcnat revert)") {
		t.Fatalf("show after a revert:\n%s", out)
	}
	h.watcher(0)
}

// A probe that cannot be run as given is refused when the flags are read:
// exit 1, the flag and its value named, and nothing changed or recorded.
// A host name is one: probes resolve no names, since the lookup would
// leave the --netns namespace.
func TestBadProbeChangesNothing(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	before := h.rules()
	for _, c := range []struct{ probe, want string }{
		{"ftp://10.0.0.1:21", `unknown kind "ftp"`},
		{"tcp://nginx.local:80", `"nginx.local" is not an IP address`},
		{"http://example:80/x", `"example" is not an IP address`},
		{"udp://host:53", `"host" is not an IP address`},
	} {
		_, errs, code := h.run("apply", "-auto-approve", "--probe", "tcp://10.0.0.1:80", "--probe", c.probe)
		if code != ExitError || !strings.Contains(errs, `svcnat: error: --probe "`+c.probe+`": `+c.want) ||
			!strings.Contains(errs, "hint: use tcp://IP:PORT") || !strings.Contains(errs, "probes resolve no host names") {
			t.Errorf("--probe %s: exit %d\n%s", c.probe, code, errs)
		}
		if h.rules() != before || h.generation() != 1 {
			t.Fatalf("--probe %s changed the rules or the record (generation %d)", c.probe, h.generation())
		}
	}
}

// An apply with nothing to change commits nothing, so its probes are not
// run and nothing awaits confirmation: it says so, rather than letting a
// job read silence as a pass.
func TestNoChangeSaysProbesWereNotRun(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	out := h.must(ExitOK, "apply", "-auto-approve", "--probe", "tcp://192.0.2.1:9", "--probe", "udp://192.0.2.1:9?expect=x", "--confirm-timeout", "1m")
	if !strings.Contains(out, "Nothing was committed: the 2 probes were not run, and nothing awaits confirmation.") {
		t.Errorf("a no-change apply with probes and a confirm timeout says:\n%s", out)
	}
	if out := h.must(ExitOK, "apply", "-auto-approve"); strings.Contains(out, "Nothing was committed") {
		t.Errorf("a plain no-change apply mentions probes:\n%s", out)
	}
}
