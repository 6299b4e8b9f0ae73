package integration

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// svcnatBin is the binary under test, built once by TestMain.
var svcnatBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() || os.Geteuid() != 0 {
		// Every test here needs root and network namespaces, and skips
		// without them (with -short, or as an ordinary user).
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "svcnat-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	svcnatBin = filepath.Join(dir, "svcnat")
	// Every svcnat the tests run keeps its namespace locks here, not in
	// the host's /run/svcnat: the tests leave nothing behind.
	os.Setenv("SVCNAT_RUNTIME_DIR", filepath.Join(dir, "run"))
	if out, err := exec.Command("go", "build", "-o", svcnatBin, "../cmd/svcnat").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building svcnat: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Result is one run of the svcnat binary.
type Result struct {
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.Code, r.Stdout, r.Stderr)
}

// Svcnat runs the binary with the given namespace, state directory and
// configuration, plus args, with a bounded time. Env entries are added to
// the environment (e.g. a PATH with a shim first).
type Svcnat struct {
	NetNS    string
	StateDir string
	Config   string
	Backend  string
	Env      []string
}

// NewSvcnat returns a runner for the namespace with a fresh state directory.
func NewSvcnat(t testing.TB, netns, config, backend string) *Svcnat {
	return &Svcnat{NetNS: netns, StateDir: t.TempDir(), Config: config, Backend: backend}
}

// Cmd builds the command without running it (for tests that signal it).
func (s *Svcnat) Cmd(args ...string) *exec.Cmd {
	full := []string{"--no-color", "--netns", s.NetNS, "--state-dir", s.StateDir, "-c", s.Config}
	if s.Backend != "" {
		full = append(full, "--backend", s.Backend)
	}
	cmd := exec.Command(svcnatBin, append(full, args...)...)
	cmd.Env = append(os.Environ(), s.Env...)
	return cmd
}

// Run runs svcnat and returns what it printed and its exit code.
func (s *Svcnat) Run(t testing.TB, args ...string) Result {
	t.Helper()
	cmd := s.Cmd(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("svcnat %s did not finish in 2 minutes", strings.Join(args, " "))
	}
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// MustRun runs svcnat and fails the test unless it exits with want.
func (s *Svcnat) MustRun(t testing.TB, want int, args ...string) Result {
	t.Helper()
	r := s.Run(t, args...)
	if r.Code != want {
		t.Fatalf("svcnat %s: want exit %d, got %s", strings.Join(args, " "), want, r)
	}
	return r
}

// writeConfig writes files (name → HCL) into a fresh directory.
func writeConfig(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
