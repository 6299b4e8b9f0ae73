package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	if err := json.Unmarshal([]byte(h.must(ExitOK, "trace", "--json", "--src", "192.0.2.2", "--dst", "10.32.0.61", "--dport", "80", "--origin", "local", "--local-address", "192.0.2.1")), &j); err != nil ||
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
		[]string{"graph", "-c", "../../examples", "--service", "default/nginx", "--local-address", "192.0.2.1"})
	want, err := os.ReadFile("../../docs/nginx-graph.dot")
	if code != 0 || err != nil || out.String() != string(want) {
		t.Fatalf("exit %d, %v: docs/nginx-graph.dot is stale; regenerate it (README, Tracing a packet):\n%s", code, err, out.String())
	}
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
			env := h.env(strings.NewReader(""), &fullDisk{room: room}, &errb)
			code := Run(env, append([]string{"--no-color", "--node", "n1", "--state-dir", h.stateDir, "-c", h.config}, args...))
			if code != ExitError || !strings.Contains(errb.String(), "svcnat: error: writing the ") ||
				!strings.Contains(errb.String(), "no space left on device") {
				t.Errorf("svcnat %s on a disk full after %d bytes: exit %d\n%s", strings.Join(args, " "), room, code, errb.String())
			}
		}
	}
}

// The README's trace examples ("## Tracing a packet") are what svcnat
// trace prints: each block's command is run (a preceding svcnat-assemble
// too), and its lines must appear in the output as shown, consecutive but
// where the README elides with "...".
func TestReadmeTracesAreCurrent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	if i := strings.Index(section, "## Tracing a packet"); i >= 0 {
		section = section[i:]
	}
	if i := strings.Index(section[3:], "\n## "); i >= 0 {
		section = section[:i+3]
	}
	tmp := t.TempDir()
	// rewrite makes a README path usable from the test's directory.
	rewrite := func(arg string) string {
		switch {
		case strings.HasPrefix(arg, "examples"):
			return "../../" + arg
		case strings.HasPrefix(arg, "/tmp/"):
			return filepath.Join(tmp, strings.TrimPrefix(arg, "/tmp/"))
		}
		return arg
	}
	blocks := 0
	for _, block := range strings.Split(section, "```\n")[1:] {
		lines := strings.Split(strings.TrimSuffix(block, "\n"), "\n")
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "$ ") {
			continue
		}
		var want []string
		var args []string
		for _, l := range lines {
			cmd, isCmd := strings.CutPrefix(l, "$ ")
			if !isCmd {
				want = append(want, l)
				continue
			}
			fields := strings.Fields(cmd)
			for i := range fields {
				fields[i] = rewrite(fields[i])
			}
			if fields[0] == "sh" {
				if out, err := exec.Command("sh", fields[1:]...).CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", cmd, err, out)
				}
				continue
			}
			if fields[0] != "svcnat" || fields[1] != "trace" {
				t.Fatalf("README command %q: the test runs svcnat trace only", cmd)
			}
			args = fields[1:]
		}
		if args == nil {
			continue
		}
		blocks++
		var out, errb bytes.Buffer
		if code := Run(Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args); code != 0 {
			t.Fatalf("svcnat %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
		}
		if err := shownIn(want, strings.Split(out.String(), "\n")); err != nil {
			t.Errorf("the README's trace (svcnat %s) is stale: %v; it prints:\n%s", strings.Join(args, " "), err, out.String())
		}
	}
	if blocks < 3 {
		t.Fatalf("found %d trace examples in the README, want 3", blocks)
	}
}

// shownIn checks that want's lines appear in got consecutively, except
// where want elides: a line "..." skips any number of lines; "A ... B"
// is line A, then any lines, then a line ending in B, standing for a
// block whose end is not shown.
func shownIn(want, got []string) error {
	at, free := 0, true // free: the next line may be anywhere from at on
	find := func(ok func(string) bool, what string) error {
		for i := at; i < len(got); i++ {
			if ok(got[i]) {
				at = i + 1
				free = false
				return nil
			}
			if !free {
				break
			}
		}
		return fmt.Errorf("no line %q where the README shows it", what)
	}
	for _, w := range want {
		if strings.TrimSpace(w) == "..." {
			free = true
			continue
		}
		head, tail, elided := strings.Cut(w, " ... ")
		if err := find(func(g string) bool { return g == head }, head); err != nil {
			return err
		}
		if elided {
			free = true
			if err := find(func(g string) bool { return strings.HasSuffix(g, tail) }, tail); err != nil {
				return err
			}
			free = true // the rest of the block A ... B abbreviates
		}
	}
	return nil
}

func TestTraceInInterfaceFlag(t *testing.T) {
	h := newFakeHost(t)
	packet := []string{"trace", "--src", "192.0.2.2", "--dst", "10.32.0.61", "--dport", "80", "--local-address", "192.0.2.1"}
	if out := h.must(ExitOK, append(packet, "--in-interface", "eth0")...); !strings.HasPrefix(out, "tcp 192.0.2.2 -> 10.32.0.61:80 (external on eth0)\n") {
		t.Fatalf("%s", out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--in-interface", "lo"}, "--in-interface lo: a packet from outside does not arrive on lo"},
		{[]string{"--in-interface", "eth0", "--origin", "local"}, "--in-interface with --origin local"},
		{[]string{"--in-interface", "a b"}, `--in-interface "a b" is not an interface name`},
		{[]string{"--in-interface", ""}, `--in-interface "" is not an interface name`},
	} {
		if _, errs, code := h.run(append(packet, c.args...)...); code != ExitError || !strings.Contains(errs, "svcnat: error: "+c.want) {
			t.Errorf("%v: exit %d\n%s", c.args, code, errs)
		}
	}
}
