package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTamperedPlanFileOnTheFake: a plan file changed after it was made is
// refused by its name, with what to do, and changes nothing.
func TestTamperedPlanFileOnTheFake(t *testing.T) {
	h := newFakeHost(t)
	planFile := filepath.Join(t.TempDir(), "nginx.plan")
	h.must(ExitOK, "plan", "-out", planFile)
	data, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "--to-destination 10.64.", "--to-destination 192.0.2.", 1)
	if edited == string(data) {
		t.Fatalf("no DNAT in the plan file:\n%s", data)
	}
	if err := os.WriteFile(planFile, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	before := h.rules()
	out, errs, code := h.run("apply", planFile)
	want := "svcnat: error: " + planFile + ": the plan file was changed after it was made: it does not match the digest recorded in it; nothing was changed\n" +
		"svcnat: hint: make the plan again (svcnat plan -out " + planFile + ") and review it\n"
	if code != ExitError || errs != want || h.rules() != before || h.generation() != 0 {
		t.Fatalf("exit %d, generation %d\n%s%s", code, h.generation(), out, errs)
	}
}
