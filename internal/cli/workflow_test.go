package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/state"
)

// fakeHost is a kernel-faithful fake host with a state directory and a
// configuration directory, for running the commands that change rules
// without root.
type fakeHost struct {
	t        *testing.T
	fake     *iptables.Fake
	stateDir string
	config   string
	mu       sync.Mutex // opened: watchers run beside commands
	opened   []engine.HostOptions
	terminal bool // what Env.Terminal says of every stream
	// stdin is the next command's standard input (nil: empty).
	stdin io.Reader
	// openErr, when set, says whether opening the host with these
	// options fails, as iptables.Open refuses a backend.
	openErr func(engine.HostOptions) error
	// watchers are the revert watchers apply --confirm-timeout started:
	// svcnat confirm-watch, run in-process; each sends its exit code
	// and output.
	watchers []chan watcherExit
	// runtimeDir, when set, is the host's engine.Host.RuntimeDir: runs
	// take the namespace lock and keep its owner record there.
	runtimeDir string
	// host, when set, opens the host in place of the iptables fake (a
	// host with more than one backend).
	host func(engine.HostOptions) (*engine.Host, error)
}

type watcherExit struct {
	code   int
	output string
}

// watcher waits for the i-th watcher to end.
func (h *fakeHost) watcher(i int) watcherExit {
	h.t.Helper()
	select {
	case w := <-h.watchers[i]:
		return w
	case <-time.After(10 * time.Second):
		h.t.Fatalf("watcher %d did not end", i)
		return watcherExit{}
	}
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	h := &fakeHost{t: t, fake: iptables.NewFake(), stateDir: t.TempDir(), config: t.TempDir()}
	docker := "*nat\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n-A DOCKER -i docker0 -j RETURN\nCOMMIT\n"
	if err := h.fake.Restore(backend.IPv4, []byte(docker), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.config, "nginx.hcl", nginx)
	return h
}

// run runs svcnat on the fake host, as main does on a real one.
func (h *fakeHost) run(args ...string) (stdout, stderr string, code int) {
	h.t.Helper()
	var out, errb bytes.Buffer
	stdin := h.stdin
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	h.stdin = nil
	env := h.env(stdin, &out, &errb)
	full := append([]string{"--no-color", "--node", "n1", "--state-dir", h.stateDir, "-c", h.config}, args...)
	code = Run(env, full)
	return out.String(), errb.String(), code
}

func (h *fakeHost) env(stdin io.Reader, stdout, stderr io.Writer) Env {
	return Env{Stdin: stdin, Stdout: stdout, Stderr: stderr,
		Terminal: func(any) bool { return h.terminal },
		OpenHost: func(o engine.HostOptions) (*engine.Host, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.opened = append(h.opened, o)
			if h.openErr != nil {
				if err := h.openErr(o); err != nil {
					return nil, err
				}
			}
			if h.host != nil {
				return h.host(o)
			}
			return &engine.Host{Kernel: h.fake, RuntimeDir: h.runtimeDir, NetNS: o.NetNS}, nil
		},
		Detach: func(name string, argv []string, _ string) (string, error) {
			done := make(chan watcherExit, 1)
			h.watchers = append(h.watchers, done)
			go func() {
				var out bytes.Buffer
				code := Run(h.env(strings.NewReader(""), &out, &out), argv[1:])
				done <- watcherExit{code, out.String()}
			}()
			return "in-process " + name, nil
		}}
}

func (h *fakeHost) must(want int, args ...string) string {
	h.t.Helper()
	out, errs, code := h.run(args...)
	if code != want {
		h.t.Fatalf("svcnat %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errs)
	}
	return out + errs
}

func (h *fakeHost) rules() string {
	rs, err := h.fake.Save(backend.IPv4)
	if err != nil {
		h.t.Fatal(err)
	}
	return rs.Text()
}

func (h *fakeHost) generation() int64 {
	d, err := state.Open(h.stateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	st, err := d.Load()
	if err != nil {
		h.t.Fatal(err)
	}
	return st.Generation
}

const nginxTwo = `service "default/nginx" {
  cluster_ips = ["10.32.0.61"]
  port {
    port = 80
  }
  endpoint {
    address = "10.64.1.2"
  }
  endpoint {
    address = "10.64.1.3"
  }
}
`

func TestApplyRollbackDestroyOnTheFake(t *testing.T) {
	h := newFakeHost(t)
	out := h.must(ExitChanges, "plan", "--detailed-exitcode")
	if !strings.Contains(out, "+ service default/nginx") {
		t.Fatalf("plan:\n%s", out)
	}
	out = h.must(ExitOK, "apply", "-auto-approve")
	if !strings.Contains(out, "Apply complete! ") || !strings.Contains(out, "generation 1 recorded in "+h.stateDir) {
		t.Fatalf("apply:\n%s", out)
	}
	if h.opened[0].Prefix != "SVCNAT" || h.opened[0].Backend != iptables.Auto {
		t.Fatalf("host opened with %+v", h.opened[0])
	}
	if out := h.must(ExitOK, "plan", "--detailed-exitcode"); !strings.Contains(out, "No changes.") {
		t.Fatalf("plan after apply:\n%s", out)
	}
	first := h.rules()
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	if out := h.must(ExitChanges, "plan", "--detailed-exitcode"); !strings.Contains(out, "~ service default/nginx: endpoint 10.64.1.3:80 added") {
		t.Fatalf("plan of an added endpoint:\n%s", out)
	}
	h.must(ExitOK, "apply", "-auto-approve")
	if out := h.must(ExitOK, "show"); !strings.Contains(out, "service default/nginx") || !strings.Contains(out, "No drift") {
		t.Fatalf("show:\n%s", out)
	}
	out = h.must(ExitOK, "rollback", "-auto-approve")
	if !strings.Contains(out, "Rolling back from generation 2 to generation 1") || !strings.Contains(out, "Rollback complete!") ||
		h.rules() != first || h.generation() != 3 {
		t.Fatalf("rollback (generation %d):\n%s", h.generation(), out)
	}
	// destroy works without the configuration: the prefix is recorded.
	writeFile(t, h.config, "nginx.hcl", "this is { not HCL")
	out = h.must(ExitOK, "destroy", "-auto-approve")
	if !strings.Contains(out, "Destroy complete!") || strings.Contains(h.rules(), "SVCNAT") || !strings.Contains(h.rules(), "-A DOCKER -i docker0 -j RETURN") {
		t.Fatalf("destroy:\n%s\n%s", out, h.rules())
	}
}

func TestSavedPlanAndStalePlanOnTheFake(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	planFile := filepath.Join(t.TempDir(), "nginx.plan")
	if out := h.must(ExitOK, "plan", "-out", planFile); !strings.Contains(out, "svcnat apply "+planFile) {
		t.Fatalf("plan -out:\n%s", out)
	}
	// Something else changes an owned chain after the plan was made.
	if err := h.fake.Restore(backend.IPv4, []byte("*nat\n-A SVCNAT-SERVICES -d 1.2.3.4/32 -j RETURN\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	before := h.rules()
	out, errs, code := h.run("apply", planFile)
	if code != ExitError || !strings.Contains(errs, "stale plan "+planFile) || !strings.Contains(errs, "+ -A SVCNAT-SERVICES -d 1.2.3.4/32 -j RETURN") ||
		!strings.Contains(errs, "svcnat: hint: run svcnat plan again") || h.rules() != before {
		t.Fatalf("stale plan: exit %d\n%s%s", code, out, errs)
	}
	// A fresh plan applies exactly, without asking (no terminal here).
	h.must(ExitOK, "plan", "-out", planFile)
	if out := h.must(ExitOK, "apply", planFile); !strings.Contains(out, "generation 2 recorded") {
		t.Fatalf("apply of a saved plan:\n%s", out)
	}
}

func TestRefusedPayloadIsRolledBackOnTheFake(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	before := h.rules()
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	h.fake.FailWhen(func(line string) bool { return strings.HasPrefix(line, "-A SVCNAT-SVC-") })
	out, errs, code := h.run("apply", "-auto-approve")
	h.fake.FailWhen(nil)
	if code != ExitError || !strings.Contains(errs, "svcnat: error: apply failed: ") || !strings.Contains(errs, "restored") ||
		h.rules() != before || h.generation() != 1 {
		t.Fatalf("exit %d, generation %d\n%s%s", code, h.generation(), out, errs)
	}
}

func TestLockHeldOnTheFake(t *testing.T) {
	h := newFakeHost(t)
	d, err := state.Open(h.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := d.Lock(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	for _, cmd := range []string{"apply", "rollback", "destroy"} {
		_, errs, code := h.run(cmd, "-auto-approve", "--lock-timeout", "0s")
		if code != ExitError || !strings.Contains(errs, "is locked by pid") || !strings.Contains(errs, "raise --lock-timeout") {
			t.Errorf("%s with the lock held: exit %d\n%s", cmd, code, errs)
		}
	}
	if strings.Contains(h.rules(), "SVCNAT") {
		t.Fatal("an apply without the lock changed the rules")
	}
}

// A plan whose deletion a foreign rule pins says so, and apply refuses it:
// plan exits 1 as Terraform's does on a prevent_destroy resource.
func TestBlockedPlanIsShownAndRefused(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	sep := pinEndpoint(t, h)
	writeFile(t, h.config, "nginx.hcl", strings.Replace(nginx, "10.64.1.2", "10.64.1.9", 1))
	out, errs, code := h.run("plan", "--detailed-exitcode")
	if code != ExitError || !strings.Contains(out, "Blocked: svcnat apply will refuse this plan") ||
		!strings.Contains(out, "-A MYCHAIN -s 10.9.9.9/32 -j "+sep+" pins "+sep) || !strings.Contains(errs, "svcnat apply would refuse this plan") {
		t.Fatalf("plan: exit %d\n%s%s", code, out, errs)
	}
	out, _, _ = h.run("plan", "--json")
	var p jsonPlan
	if err := json.Unmarshal([]byte(out), &p); err != nil || len(p.Blocked) != 1 || p.Blocked[0].Chain != "MYCHAIN" {
		t.Fatalf("plan --json: %v\n%s", err, out)
	}
	before := h.rules()
	_, errs, code = h.run("apply", "-auto-approve")
	if code != ExitError || !strings.Contains(errs, "MYCHAIN") || h.rules() != before {
		t.Fatalf("apply of a blocked plan: exit %d\n%s", code, errs)
	}
}

// Large applies are staged, and say how they go on a terminal (stderr),
// and only there.
func TestStagedApplyReportsProgressOnATerminal(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 600; i++ {
		b.WriteString(strings.NewReplacer("default/nginx", "default/s"+strconv.Itoa(i),
			"10.32.0.61", fmt.Sprintf("10.32.%d.%d", i/250, i%250+1)).Replace(nginxTwo))
	}
	for _, terminal := range []bool{false, true} {
		h := newFakeHost(t)
		h.terminal = terminal
		writeFile(t, h.config, "nginx.hcl", b.String())
		out, errs, code := h.run("apply", "-auto-approve")
		progress := strings.Contains(errs, "svcnat: creating IPv4 chains: 1000 of 1809") &&
			strings.Contains(errs, "svcnat: creating IPv4 chains: 1809 of 1809") &&
			strings.Contains(errs, "svcnat: committing IPv4, ") && strings.Contains(errs, "svcnat: verifying (")
		if code != ExitOK || progress != terminal || !strings.Contains(out, "lines written) in ") {
			t.Fatalf("terminal %v: exit %d, progress shown %v\n%s\n%s", terminal, code, progress, errs, out[len(out)-300:])
		}
	}
}

// pinEndpoint makes a foreign rule jump to the endpoint chain of the
// applied nginx, so that a plan deleting it is blocked; it returns the
// chain.
func pinEndpoint(t *testing.T, h *fakeHost) string {
	t.Helper()
	var sep string
	for _, l := range strings.Split(h.rules(), "\n") {
		if strings.HasPrefix(l, ":SVCNAT-SEP-") {
			sep = strings.Fields(l[1:])[0]
		}
	}
	pin := "*nat\n:MYCHAIN - [0:0]\n-A MYCHAIN -s 10.9.9.9/32 -j " + sep + "\nCOMMIT\n"
	if err := h.fake.Restore(backend.IPv4, []byte(pin), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	return sep
}
