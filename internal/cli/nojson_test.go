package cli

import (
	"strings"
	"testing"
)

// A command without JSON output refuses --json rather than print text
// where a program expects a document.
func TestJSONRefusedWithoutJSONOutput(t *testing.T) {
	h := newFakeHost(t)
	for _, cmd := range []string{"render", "graph", "man"} {
		out, errs, code := h.run(cmd, "--json")
		if code != ExitError || out != "" || !strings.Contains(errs, "svcnat: error: "+cmd+" has no JSON output") ||
			!strings.Contains(errs, "svcnat: hint: ") {
			t.Errorf("%s --json: exit %d\n%s%s", cmd, code, out, errs)
		}
	}
}
