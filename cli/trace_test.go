package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestTraceAndGraphOfThePlan(t *testing.T) {
	h := newFakeHost(t)
	out := h.must(ExitOK, "trace", "--src", "192.0.2.2", "--dst", "10.32.0.61", "--dport", "80", "--local-address", "192.0.2.1")
	if !strings.Contains(out, "path 1 (100.0 %):") || !strings.Contains(out, "verdict: DNAT to 10.64.1.2:80") ||
		!strings.Contains(out, "PREROUTING ==> SVCNAT-SERVICES ==> SVCNAT-SVC-") {
		t.Fatalf("trace:\n%s", out)
	}
	var j traceJSON
	if err := json.Unmarshal([]byte(h.must(ExitOK, "trace", "--json", "--src", "192.0.2.2", "--dst", "10.32.0.61", "--dport", "80", "--origin", "local")), &j); err != nil ||
		len(j.Paths) != 1 || j.Paths[0].Verdict != "DNAT" || j.Paths[0].Destination != "10.64.1.2:80" || j.Paths[0].Hops[0].Hook != "OUTPUT" {
		t.Fatalf("trace --json: %v %+v", err, j)
	}
	if _, errs, code := h.run("trace", "--src", "nope", "--dst", "10.32.0.61", "--dport", "80"); code != ExitError || !strings.Contains(errs, `--src "nope" is not an IP address`) {
		t.Fatalf("a bad --src: %d %s", code, errs)
	}
	if out := h.must(ExitOK, "graph"); !strings.HasPrefix(out, "digraph svcnat {") || !strings.Contains(out, `"DNAT 10.64.1.2:80"`) {
		t.Fatalf("graph:\n%s", out)
	}
	if out := h.must(ExitOK, "graph", "--format", "mermaid", "--service", "default/nginx"); !strings.HasPrefix(out, "flowchart LR") {
		t.Fatalf("graph --format mermaid:\n%s", out)
	}
	// --live reads the (fake) kernel: nothing applied, nothing to DNAT.
	if out := h.must(ExitOK, "trace", "--live", "--src", "192.0.2.2", "--dst", "10.32.0.61", "--dport", "80"); !strings.Contains(out, "verdict: ACCEPT") {
		t.Fatalf("trace --live before apply:\n%s", out)
	}
	h.must(ExitOK, "apply", "-auto-approve")
	if out := h.must(ExitOK, "trace", "--live", "--src", "192.0.2.2", "--dst", "10.32.0.61", "--dport", "80"); !strings.Contains(out, "verdict: DNAT to 10.64.1.2:80") {
		t.Fatalf("trace --live after apply:\n%s", out)
	}
}

// docs/nginx-graph.dot (rendered as docs/nginx-graph.svg in the README) is
// what svcnat graph writes for the example.
func TestDocsGraphIsCurrent(t *testing.T) {
	var out bytes.Buffer
	code := Run(Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out},
		[]string{"graph", "-c", "../examples", "--service", "default/nginx", "--local-address", "192.0.2.1"})
	want, err := os.ReadFile("../docs/nginx-graph.dot")
	if code != 0 || err != nil || out.String() != string(want) {
		t.Fatalf("exit %d, %v: docs/nginx-graph.dot is stale; regenerate it (README, Tracing a packet):\n%s", code, err, out.String())
	}
}

// fullDisk takes n bytes, then fails every write as a full disk does.
type fullDisk struct{ n int }

func (d *fullDisk) Write(p []byte) (int, error) {
	if len(p) <= d.n {
		d.n -= len(p)
		return len(p), nil
	}
	k := d.n
	d.n = 0
	return k, syscall.ENOSPC
}

// A trace or a graph that cannot be written whole is an error and exit 1,
// never a silent success with half the output.
func TestTraceAndGraphReportWriteErrors(t *testing.T) {
	h := newFakeHost(t)
	packet := []string{"--src", "192.0.2.2", "--dst", "10.32.0.61", "--dport", "80", "--local-address", "192.0.2.1"}
	for _, args := range [][]string{
		append([]string{"trace"}, packet...),
		append([]string{"trace", "--json"}, packet...),
		{"graph"},
		{"graph", "--format", "mermaid"},
	} {
		for _, room := range []int{0, 40} {
			var errb bytes.Buffer
			env := h.env(strings.NewReader(""), &fullDisk{n: room}, &errb)
			code := Run(env, append([]string{"--no-color", "--node", "n1", "--state-dir", h.stateDir, "-c", h.config}, args...))
			if code != ExitError || !strings.Contains(errb.String(), "svcnat: error: writing the ") ||
				!strings.Contains(errb.String(), "no space left on device") {
				t.Errorf("svcnat %s on a disk full after %d bytes: exit %d\n%s", strings.Join(args, " "), room, code, errb.String())
			}
		}
	}
}
