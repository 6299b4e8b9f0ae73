package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// asSvcnat, set in the environment, makes the test binary svcnat itself,
// so that a test runs the real program, streams and signals included.
const asSvcnat = "SVCNAT_TEST_RUN_AS_SVCNAT"

func TestMain(m *testing.M) {
	if os.Getenv(asSvcnat) != "" {
		main()
		os.Exit(0) // main exits; never reached
	}
	os.Exit(m.Run())
}

// svcnat runs the program with args, standard output to stdout.
func svcnat(t *testing.T, stdout *os.File, args ...string) (code int, stderr string) {
	t.Helper()
	var errb bytes.Buffer
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asSvcnat+"=1")
	cmd.Stdout, cmd.Stderr = stdout, &errb
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	// -1 when a signal ended it.
	return cmd.ProcessState.ExitCode(), errb.String()
}

// Output to a pipe whose reader has gone (svcnat render | head -1, once
// head has exited) is an error svcnat reports, exit 1, as the README
// says: Go's runtime would otherwise end the program with SIGPIPE (exit
// 141 in a shell) before it says anything.
func TestClosedPipeIsReported(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	code, stderr := svcnat(t, w, "render", "-c", "../../examples", "--node", "n1")
	if code != 1 || !strings.Contains(stderr, "svcnat: error: writing ") || !strings.Contains(stderr, "broken pipe") {
		t.Fatalf("svcnat render to a closed pipe: exit %d (-1: killed by a signal), stderr:\n%s", code, stderr)
	}
}
