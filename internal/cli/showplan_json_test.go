package cli

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// show --json PLANFILE is plan --json's document of the saved plan, member
// for member and in its order, with file, destroy and config_digest after
// its own members.
func TestShowPlanFileJSONIsPlanJSONAndTheFile(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	planFile := filepath.Join(t.TempDir(), "nginx.plan")
	planOut := h.must(ExitOK, "--json", "plan", "-out", planFile)
	showOut := h.must(ExitOK, "--json", "show", planFile)
	plan, show := planDoc(t, planOut), planDoc(t, showOut)
	for k, v := range plan {
		if !jsonEqual(show[k], v) {
			t.Errorf("show --json PLANFILE: %s is %v, plan --json said %v", k, show[k], v)
		}
	}
	for _, k := range []string{"file", "destroy", "config_digest"} {
		if _, ok := show[k]; !ok {
			t.Errorf("show --json PLANFILE: no %s", k)
		}
	}
	if len(show) != len(plan)+3 || show["file"] != planFile || show["destroy"] != false ||
		!strings.HasPrefix(show["config_digest"].(string), "sha256:") {
		t.Errorf("show --json PLANFILE: members %v", show)
	}
	// The members in order: plan --json's, then the file's.
	member := regexp.MustCompile(`(?m)^  "([a-z_]+)":`)
	var order []string
	for _, m := range member.FindAllStringSubmatch(planOut, -1) {
		order = append(order, m[1])
	}
	order = append(order, "file", "destroy", "config_digest")
	var got []string
	for _, m := range member.FindAllStringSubmatch(showOut, -1) {
		got = append(got, m[1])
	}
	if strings.Join(got, " ") != strings.Join(order, " ") {
		t.Errorf("show --json PLANFILE: members in the order\n  %v\nwant\n  %v", got, order)
	}
}
