package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// walkthrough runs the README's walkthrough on a fake host, up to its
// rollback: examples/ applied (generation 1), the plan without endpoint
// 10.64.3.2 saved and applied (2), rolled back (3).
func walkthrough(t *testing.T) *fakeHost {
	t.Helper()
	t.Setenv("SVCNAT_NETNS", "svcnat-try")
	h := &fakeHost{t: t, fake: iptables.NewFake(), stateDir: t.TempDir(), config: t.TempDir()}
	for _, f := range []string{"settings.hcl", "nginx.hcl", "dns.hcl"} {
		b, err := os.ReadFile(filepath.Join("../../examples", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, h.config, f, string(b))
	}
	h.must(ExitOK, "apply", "-auto-approve", "--node", "node1")
	nginx, _ := os.ReadFile(filepath.Join(h.config, "nginx.hcl"))
	cut := regexp.MustCompile(`(?s)\n  endpoint \{\n    address = "10\.64\.3\.2"\n.*?\n  \}`)
	if !cut.Match(nginx) {
		t.Fatal("examples/nginx.hcl has no endpoint 10.64.3.2")
	}
	writeFile(t, h.config, "nginx.hcl", cut.ReplaceAllString(string(nginx), ""))
	plan := filepath.Join(t.TempDir(), "nginx.plan")
	h.must(ExitOK, "plan", "-out", plan, "--node", "node1")
	h.must(ExitOK, "apply", plan)
	h.must(ExitOK, "rollback", "-auto-approve")
	return h
}

// readmeBlock returns the fenced block of README.md that follows marker.
func readmeBlock(t *testing.T, marker, fence string) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README has no %q", marker)
	}
	s = s[i:]
	j := strings.Index(s, "```"+fence+"\n")
	if j < 0 {
		t.Fatalf("README has no %s block after %q", fence, marker)
	}
	s = s[j+len("```"+fence+"\n"):]
	return s[:strings.Index(s, "```")]
}

// The README's history --json example is what svcnat prints after the
// walkthrough: the same fields, of the same types, and the same values
// but for the state directory, the times and the digests, which differ
// from run to run (the digests hash the configuration's path names).
func TestReadmeHistoryJSONExample(t *testing.T) {
	h := walkthrough(t)
	var got, want map[string]any
	if err := json.Unmarshal([]byte(h.must(ExitOK, "history", "--json")), &got); err != nil {
		t.Fatal(err)
	}
	block := readmeBlock(t, "svcnat history --json", "json")
	if err := json.Unmarshal([]byte(block), &want); err != nil {
		t.Fatalf("the README's history --json example is no JSON document: %v\n%s", err, block)
	}
	varies := map[string]bool{"state_dir": true, "recorded_at": true, "config_digest": true, "rules_digest": true}
	var same func(path string, w, g any)
	same = func(path string, w, g any) {
		switch wv := w.(type) {
		case map[string]any:
			gv, ok := g.(map[string]any)
			if !ok {
				t.Errorf("%s: README has an object, svcnat prints %v", path, g)
				return
			}
			wk, gk := slices.Sorted(mapKeys(wv)), slices.Sorted(mapKeys(gv))
			if !slices.Equal(wk, gk) {
				t.Errorf("%s: README has the fields %v, svcnat prints %v", path, wk, gk)
			}
			for k := range wv {
				same(path+"."+k, wv[k], gv[k])
			}
		case []any:
			gv, ok := g.([]any)
			if !ok || len(gv) != len(wv) {
				t.Errorf("%s: README has %d entries, svcnat prints %v", path, len(wv), g)
				return
			}
			for i := range wv {
				same(path+"[]", wv[i], gv[i])
			}
		default:
			key := path[strings.LastIndex(path, ".")+1:]
			if varies[key] {
				if _, ok := g.(string); !ok || (w == nil) != (g == nil) {
					t.Errorf("%s: README has %v, svcnat prints %v", path, w, g)
				}
				return
			}
			if w != g {
				t.Errorf("%s: README has %v, svcnat prints %v", path, w, g)
			}
		}
	}
	same("", want, got)
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// The README's history example is what svcnat prints after the
// walkthrough, but for the state directory, the times and the digests.
func TestReadmeHistoryExample(t *testing.T) {
	h := walkthrough(t)
	got := h.must(ExitOK, "history")
	t.Log("\n" + got + h.must(ExitOK, "history", "--json"))
	want := readmeBlock(t, "### History\n", "")
	want = strings.TrimPrefix(want, "$ svcnat history\n")
	varying := regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC|\b[0-9a-f]{12}\b|/tmp/svcnat-try|/tmp/\S+/\d+`)
	norm := func(s string) string { return varying.ReplaceAllString(s, "…") }
	if norm(got) != norm(want) {
		t.Fatalf("svcnat history prints\n%s\nthe README shows\n%s", got, want)
	}
}

// The README's example of a state directory used in another namespace is
// what apply says.
func TestReadmeOtherNamespaceExample(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve", "--netns", "svcnat-a")
	_, errs, code := h.run("apply", "-auto-approve")
	want := readmeBlock(t, "A state directory records, too,", "")
	if code != ExitError || strings.ReplaceAll(errs, h.stateDir, "/var/lib/svcnat") != want {
		t.Fatalf("apply in another namespace: exit %d\n%s\nthe README shows\n%s", code, errs, want)
	}
}
