package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's `svcnat show nginx.plan` example is the walkthrough's saved
// plan (the endpoint 10.64.3.2 deleted from the examples): its service
// line and its Plan line are what show prints for it.
func TestREADMEShowPlanExample(t *testing.T) {
	h := newFakeHost(t)
	for _, f := range []string{"dns.hcl", "nginx.hcl", "settings.hcl"} {
		b, err := os.ReadFile(filepath.Join("../../examples", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, h.config, f, string(b))
	}
	h.must(ExitOK, "apply", "-auto-approve")
	b, _ := os.ReadFile(filepath.Join(h.config, "nginx.hcl"))
	edited := strings.Replace(string(b), "  endpoint {\n    address = \"10.64.3.2\"\n    node    = \"node2\"\n  }\n", "", 1)
	if edited == string(b) {
		t.Fatal("examples/nginx.hcl has no endpoint 10.64.3.2 to delete")
	}
	writeFile(t, h.config, "nginx.hcl", edited)
	plan := filepath.Join(t.TempDir(), "nginx.plan")
	h.must(ExitChanges, "plan", "--detailed-exitcode", "-out", plan)
	out := h.must(ExitOK, "show", plan)

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "$ svcnat show nginx.plan\n")
	if !ok {
		t.Fatal("README has no show nginx.plan example")
	}
	block, _, _ = strings.Cut(block, "```")
	checked := 0
	for _, line := range strings.Split(block, "\n") {
		if strings.HasPrefix(line, "  ~ ") || strings.HasPrefix(line, "Plan: ") || strings.HasPrefix(line, "    svcnat apply") {
			checked++
			line = strings.Replace(line, "svcnat apply nginx.plan", "svcnat apply "+plan, 1)
			if !strings.Contains(out, line+"\n") {
				t.Errorf("show prints no line %q; it printed\n%s", line, out)
			}
		}
	}
	if checked < 3 {
		t.Errorf("the README's example has %d of its service, Plan and apply lines; want all 3", checked)
	}
}
