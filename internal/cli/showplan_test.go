package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// show PLANFILE renders a saved plan without the host or the state
// directory: no root, no iptables.
func TestShowPlanFileOpensNothing(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	planFile := filepath.Join(t.TempDir(), "nginx.plan")
	h.must(ExitOK, "plan", "-out", planFile)
	destroyFile := filepath.Join(t.TempDir(), "destroy.plan")
	h.must(ExitOK, "plan", "-destroy", "-out", destroyFile)

	viewer := newFakeHost(t)
	viewer.stateDir = filepath.Join(t.TempDir(), "none")
	out := viewer.must(ExitOK, "show", planFile)
	for _, want := range []string{"Saved plan " + planFile + ": an apply", "~ service default/nginx: endpoint 10.64.1.3:80 added",
		"Plan: ", "svcnat apply " + planFile} {
		if !strings.Contains(out, want) {
			t.Fatalf("show PLANFILE: no %q\n%s", want, out)
		}
	}
	out = viewer.must(ExitOK, "show", destroyFile)
	if !strings.Contains(out, "Saved plan "+destroyFile+": a destroy") || !strings.Contains(out, "- service default/nginx") {
		t.Fatalf("show of a destroy plan:\n%s", out)
	}
	out, errs, code := viewer.run("--json", "show", planFile)
	doc := planDoc(t, out)
	if code != ExitOK || errs != "" || doc["prefix"] != "SVCNAT" || doc["changed"] != true || doc["destroy"] != false ||
		len(doc["changes"].([]any)) == 0 {
		t.Fatalf("show --json PLANFILE: exit %d\n%s%s", code, out, errs)
	}
	if doc := planDoc(t, viewer.must(ExitOK, "--json", "show", destroyFile)); doc["destroy"] != true {
		t.Fatalf("show --json of a destroy plan: destroy %v", doc["destroy"])
	}
	if len(viewer.opened) != 0 {
		t.Fatalf("show PLANFILE opened the host: %+v", viewer.opened)
	}
	if _, err := os.Stat(viewer.stateDir); !os.IsNotExist(err) {
		t.Fatalf("show PLANFILE made the state directory: %v", err)
	}
	// A tampered file is refused by its name, as apply refuses it.
	if err := os.WriteFile(planFile, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs, code = viewer.run("show", planFile)
	if code != ExitError || !strings.HasPrefix(errs, "svcnat: error: "+planFile+": not a saved svcnat plan") {
		t.Fatalf("show of a file that is no plan: exit %d\n%s", code, errs)
	}
	_, errs, code = viewer.run("show", planFile, "x")
	if code != ExitError || !strings.Contains(errs, "show takes at most one saved plan file") {
		t.Fatalf("show with two arguments: exit %d\n%s", code, errs)
	}
}

// show --json is one JSON document: the pending apply, the owned rules by
// service, the generation and the drift from it, interrupted chains.
func TestShowJSON(t *testing.T) {
	h := newFakeHost(t)
	out, errs, code := h.run("--json", "show")
	doc := planDoc(t, out)
	if code != ExitOK || errs != "" || doc["generation"] != nil || doc["drift"] != nil || doc["pending"] != nil {
		t.Fatalf("show --json before any apply: exit %d\n%s%s", code, out, errs)
	}
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	id := pendingID(t, h.must(ExitOK, "apply", "-auto-approve", "--confirm-timeout", "1h"))
	out, errs, code = h.run("--json", "show")
	doc = planDoc(t, out)
	owned := doc["owned"].(map[string]any)
	services := owned["services"].([]any)
	svc := services[0].(map[string]any)
	pending, _ := doc["pending"].(map[string]any)
	gen, _ := doc["generation"].(map[string]any)
	drift, _ := doc["drift"].(map[string]any)
	if code != ExitOK || errs != "" || doc["prefix"] != "SVCNAT" || len(services) != 1 || svc["name"] != "default/nginx" ||
		len(svc["rules"].([]any)) == 0 || pending == nil || pending["id"] != id || gen == nil || gen["generation"] != 2.0 ||
		drift == nil || drift["changed"] != false || len(doc["interrupted"].([]any)) != 0 {
		t.Fatalf("show --json: exit %d\n%s%s", code, out, errs)
	}
	h.must(ExitOK, "confirm", id)
	h.watcher(0)
	// Drift: an owned rule added behind svcnat's back.
	if err := h.fake.Restore(backend.IPv4, []byte("*nat\n-A SVCNAT-SERVICES -d 1.2.3.4/32 -j RETURN\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	doc = planDoc(t, h.must(ExitOK, "--json", "show"))
	if drift := doc["drift"].(map[string]any); drift["changed"] != true || len(drift["changes"].([]any)) != 1 {
		t.Fatalf("show --json with drift: %v", doc["drift"])
	}
	// The README's example has the fields show --json writes, at every
	// level, and no others: its pending apply stands for the one above.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "### `show --json`\n\n```json\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok {
		t.Fatal("README has no show --json example")
	}
	var example map[string]any
	if err := json.Unmarshal([]byte(block), &example); err != nil {
		t.Fatalf("the README's show --json example is not JSON: %v\n%s", err, block)
	}
	doc["pending"] = pending
	got, open := jsonPaths(doc)
	want, _ := jsonPaths(example)
	for p := range got {
		if !want[p] {
			t.Errorf("the README's show --json example lacks %s", p)
		}
	}
	for p := range want {
		if !got[p] && !under(p, open) {
			t.Errorf("show --json has no %s, which the README's example shows", p)
		}
	}
}

// jsonPaths lists the keys of a JSON value at every level ("owned.services[].name"),
// and the paths whose value is null or an empty array, whose keys it
// cannot know.
func jsonPaths(v any) (paths, open map[string]bool) {
	paths, open = map[string]bool{}, map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case nil:
			open[prefix] = true
		case map[string]any:
			for k, x := range v {
				paths[prefix+"."+k] = true
				walk(prefix+"."+k, x)
			}
		case []any:
			if len(v) == 0 {
				open[prefix] = true
			}
			for _, x := range v {
				walk(prefix+"[]", x)
			}
		}
	}
	walk("", v)
	return paths, open
}

// under reports whether path is within one of prefixes.
func under(path string, prefixes map[string]bool) bool {
	for p := range prefixes {
		if strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[]") {
			return true
		}
	}
	return false
}
