package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// apply takes a saved plan; given a configuration instead (a .hcl file, a
// directory, a file of HCL) it says so and how to apply that
// configuration, with -c, and never suggests writing a plan over it.
func TestApplyOfAConfigurationSaysToUseC(t *testing.T) {
	h := newFakeHost(t)
	hclFile := filepath.Join(h.config, "nginx.hcl")
	other := filepath.Join(t.TempDir(), "nginx.conf") // HCL by its content alone
	if err := os.WriteFile(other, []byte(nginx), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []string{hclFile, h.config, other} {
		before, _ := os.ReadFile(hclFile)
		for _, cmd := range []string{"apply", "show"} {
			out, errs, code := h.run(cmd, cfg)
			if code != ExitError || out != "" ||
				!strings.Contains(errs, "svcnat: error: "+cfg+" is a configuration, not a saved plan: svcnat "+cmd+" takes a saved plan file") ||
				!strings.Contains(errs, "svcnat "+map[string]string{"apply": "apply", "show": "plan"}[cmd]+" -c "+cfg) ||
				strings.Contains(errs, "-out "+cfg) {
				t.Errorf("%s %s: exit %d\n%s%s", cmd, cfg, code, out, errs)
			}
		}
		if after, _ := os.ReadFile(hclFile); string(after) != string(before) || h.generation() != 0 || strings.Contains(h.rules(), "SVCNAT") {
			t.Fatalf("apply %s changed something", cfg)
		}
	}
	// Neither a plan nor a configuration: no -out onto it either.
	notes := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notes, []byte("remember the milk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"apply", "show"} {
		_, errs, code := h.run(cmd, notes)
		if code != ExitError || !strings.Contains(errs, "svcnat: error: "+notes+": not a saved svcnat plan") ||
			!strings.Contains(errs, "svcnat: hint: ") || strings.Contains(errs, "-out "+notes) {
			t.Errorf("%s of a file that is neither: exit %d\n%s", cmd, code, errs)
		}
	}
}
