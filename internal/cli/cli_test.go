package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run calls svcnat in-process, as main does, capturing its streams.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const nginx = `service "default/nginx" {
  cluster_ips = ["10.32.0.61"]
  port {
    port = 80
  }
  endpoint {
    address = "10.64.1.2"
  }
}
`

func TestValidateReportsEveryErrorWithItsLine(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.hcl", `service "default/web" {
  cluster_ips = ["10.32.0.300"]
  port {
    port = 70000
  }
}
`)
	out, errs, code := run(t, "validate", "-c", dir, "--no-color")
	if code != ExitError {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
	}
	for _, want := range []string{"a.hcl:2", "a.hcl:4", "svcnat: error: 2 problems"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

func TestValidateAcceptsExamples(t *testing.T) {
	out, errs, code := run(t, "-c", "../../examples", "validate")
	if code != ExitOK || !strings.Contains(out, "valid") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}

func TestFmtCheckAndRewrite(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "a.hcl", "service \"default/x\" {\ncluster_ips=[\"10.32.0.1\"]\n  port {\n port = 80\n }\n}\n")
	out, _, code := run(t, "fmt", "-check", "-diff", p)
	if code != ExitFormat || !strings.Contains(out, "+  cluster_ips = [\"10.32.0.1\"]\n") {
		t.Fatalf("fmt -check: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), "cluster_ips=") {
		t.Fatal("fmt -check changed the file")
	}
	if _, _, code := run(t, "fmt", p); code != ExitOK {
		t.Fatalf("fmt: exit %d", code)
	}
	if _, _, code := run(t, "fmt", "-check", p); code != ExitOK {
		t.Fatalf("fmt -check after fmt: exit %d, want 0 (formatting must be idempotent)", code)
	}
}

func TestRenderNeedsNoKernel(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.hcl", nginx)
	out, errs, code := run(t, "render", "-c", dir, "--node", "n1")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"*nat", ":SVCNAT-SERVICES - [0:0]", `-A SVCNAT-SERVICES -d 10.32.0.61/32 -p tcp -m comment --comment "default/nginx cluster IP" -m tcp --dport 80 -j SVCNAT-SVC-`, "COMMIT"} {
		if !strings.Contains(out, want) {
			t.Errorf("render output lacks %q", want)
		}
	}
}

// planOffline plans against a saved dump, as CI without root does.
func planOffline(t *testing.T, dump string, args ...string) (string, string, int) {
	dir := t.TempDir()
	writeFile(t, dir, "a.hcl", nginx)
	d := writeFile(t, t.TempDir(), "dump", dump)
	return run(t, append([]string{"plan", "-c", dir, "--node", "n1", "--iptables-save", d, "--no-color"}, args...)...)
}

func TestPlanAgainstDumpDetailedExitcode(t *testing.T) {
	out, errs, code := planOffline(t, "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", "--detailed-exitcode")
	if code != ExitChanges {
		t.Fatalf("exit %d, want 2\n%s%s", code, out, errs)
	}
	for _, want := range []string{"+ service default/nginx", "+ chain SVCNAT-SVC-", "Plan: "} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	// The plan of what the render prints back is empty.
	dir := t.TempDir()
	writeFile(t, dir, "a.hcl", nginx)
	rendered, _, _ := run(t, "render", "-c", dir, "--node", "n1")
	out, _, code = planOffline(t, rendered, "--detailed-exitcode")
	if code != ExitOK || !strings.Contains(out, "No changes.") {
		t.Fatalf("plan against its own render: exit %d\n%s", code, out)
	}
}

func TestPlanJSONIsVersioned(t *testing.T) {
	out, _, code := planOffline(t, "", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var p jsonPlan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if p.FormatVersion != PlanJSONVersion || !p.Changed || p.Summary.Add == 0 || len(p.Changes) == 0 || p.Services[0].Action != "create" {
		t.Fatalf("unexpected plan: %+v", p)
	}
}

func TestApplyWithoutTerminalRefuses(t *testing.T) {
	h := newFakeHost(t)
	for _, cmd := range []string{"apply", "destroy"} {
		if cmd == "destroy" {
			h.must(ExitOK, "apply", "-auto-approve")
		}
		before := h.rules()
		_, errs, code := h.run(cmd)
		if code != ExitError || !strings.Contains(errs, cmd+" needs confirmation and standard input is not a terminal") ||
			!strings.Contains(errs, "svcnat: hint: ") || h.rules() != before {
			t.Fatalf("%s: exit %d\n%s", cmd, code, errs)
		}
	}
	// With --json there is no one to ask either.
	if _, errs, code := h.run("destroy", "--json"); code != ExitError || !strings.Contains(errs, "destroy --json cannot ask for confirmation") {
		t.Fatalf("destroy --json: exit %d\n%s", code, errs)
	}
}

func TestApplyToADumpChangesNothing(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.hcl", nginx)
	d := writeFile(t, t.TempDir(), "dump", "")
	_, errs, code := run(t, "apply", "-auto-approve", "-c", dir, "--iptables-save", d, "--state-dir", t.TempDir(), "--no-color")
	if code != ExitError || !strings.Contains(errs, "apply: cannot change a saved dump; nothing was changed") ||
		!strings.Contains(errs, "svcnat: hint: drop --iptables-save") {
		t.Fatalf("exit %d\n%s", code, errs)
	}
}

func TestUnknownBackendIsAnError(t *testing.T) {
	_, errs, code := run(t, "plan", "-c", "../../examples", "--backend", "iptables-ng")
	if code != ExitError || !strings.Contains(errs, `unknown backend "iptables-ng"`) {
		t.Fatalf("exit %d\n%s", code, errs)
	}
}

func TestGlobalFlagsBeforeOrAfterCommand(t *testing.T) {
	a, _, _ := run(t, "-c", "../../examples", "--node", "node-x", "render")
	b, _, _ := run(t, "render", "-c", "../../examples", "--node", "node-x")
	if a != b || !strings.Contains(a, "node node-x") {
		t.Fatalf("flag position changes the result:\n%s\n---\n%s", a, b)
	}
}

// --node reaches the render output, so it is checked like the
// configuration's node names: no text of it may smuggle a rule.
func TestHostileNodeIsRefused(t *testing.T) {
	out, errs, code := run(t, "render", "-c", "../../examples", "--node", "x)\n*filter\n-A INPUT -j DROP\nCOMMIT\n#")
	if code != ExitError || strings.Contains(out, "-A INPUT -j DROP") || !strings.Contains(errs, "not a valid node name") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
}

func TestNoColorEnvAnyValue(t *testing.T) {
	t.Setenv("NO_COLOR", "yes")
	if _, errs, code := run(t, "-c", "../../examples", "validate"); code != ExitOK {
		t.Fatalf("NO_COLOR=yes: exit %d\n%s", code, errs)
	}
}

// The README's schema block is what newcomers copy: it must validate,
// formatted as svcnat fmt leaves it.
func TestReadmeConfigurationBlockIsValid(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const start = "```hcl\nsettings {"
	i := strings.Index(string(readme), start)
	if i < 0 {
		t.Fatal("README has no configuration block starting with settings")
	}
	block := string(readme)[i+len("```hcl\n"):]
	block = block[:strings.Index(block, "```")]
	dir := t.TempDir()
	writeFile(t, dir, "readme.hcl", block)
	if out, errs, code := run(t, "validate", "-c", dir, "--no-color"); code != ExitOK {
		t.Fatalf("the README's configuration block does not validate:\n%s%s", out, errs)
	}
	// A fleet's CI runs fmt -check: the block passes it as copied.
	if out, errs, code := run(t, "fmt", "-check", "-diff", dir); code != ExitOK {
		t.Fatalf("the README's configuration block is not in svcnat fmt's form:\n%s%s", out, errs)
	}
}

// With --json, configuration errors are a JSON report on stdout that CI
// tools can annotate a pull request from; exit 1 as without.
func TestJSONDiagnostics(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.hcl", "service \"default/web\" {\n  cluster_ips = [\"10.32.0.300\"]\n  port {\n    port = 70000\n  }\n}\n")
	for _, cmd := range []string{"validate", "plan"} {
		out, errs, code := run(t, cmd, "--json", "-c", dir, "--iptables-save", "/dev/null")
		var got struct {
			Valid       bool `json:"valid"`
			ErrorCount  int  `json:"error_count"`
			Diagnostics []struct {
				Summary string `json:"summary"`
				Range   struct {
					Filename string `json:"filename"`
					Start    struct{ Line, Column int }
				} `json:"range"`
			} `json:"diagnostics"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != ExitError || got.Valid || got.ErrorCount != 2 {
			t.Fatalf("%s --json: exit %d, %v\n%s%s", cmd, code, err, out, errs)
		}
		if d := got.Diagnostics[1]; d.Range.Filename != filepath.Join(dir, "a.hcl") || d.Range.Start.Line != 4 || d.Range.Start.Column != 5 {
			t.Fatalf("%s --json: second diagnostic %+v", cmd, d)
		}
	}
	out, _, code := run(t, "validate", "--json", "-c", "../../examples")
	if code != ExitOK || !strings.Contains(out, `"valid": true`) {
		t.Fatalf("validate --json of a valid configuration: exit %d\n%s", code, out)
	}
}
