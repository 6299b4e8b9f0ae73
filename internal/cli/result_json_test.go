package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// oneDoc decodes stdout as a program reading the README would, and fails
// unless it is exactly one JSON object: nothing before it, nothing after.
func oneDoc(t *testing.T, args []string, out string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("svcnat %s: stdout is not a JSON document: %v\n%s", strings.Join(args, " "), err, out)
	}
	var more any
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		t.Fatalf("svcnat %s: stdout holds more than one JSON document (%v)\n%s", strings.Join(args, " "), err, out)
	}
	return doc
}

// result runs a command with --json and returns its document's result,
// after checking the document's frame: the results' format_version, and
// the plan (an object with the plan's own format_version, or null).
func (h *fakeHost) result(want int, args ...string) (doc, res map[string]any) {
	h.t.Helper()
	args = append([]string{args[0], "--json"}, args[1:]...)
	out, errs, code := h.run(args...)
	if code != want {
		h.t.Fatalf("svcnat %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errs)
	}
	doc = oneDoc(h.t, args, out)
	if doc["format_version"] != ResultJSONVersion {
		h.t.Fatalf("svcnat %s: format_version %v, want %s", strings.Join(args, " "), doc["format_version"], ResultJSONVersion)
	}
	if p, ok := doc["plan"].(map[string]any); doc["plan"] != nil && (!ok || p["format_version"] != PlanJSONVersion) {
		h.t.Fatalf("svcnat %s: plan is not plan --json's document: %v", strings.Join(args, " "), doc["plan"])
	}
	res, ok := doc["result"].(map[string]any)
	if !ok {
		h.t.Fatalf("svcnat %s: no result object:\n%s", strings.Join(args, " "), out)
	}
	return doc, res
}

// expect fails unless res holds each key with the value given (JSON
// numbers are float64).
func expect(t *testing.T, what string, res map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got, ok := res[k]; !ok || !jsonEqual(got, v) {
			t.Errorf("%s: %s is %v, want %v\nresult: %v", what, k, got, v, res)
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// Every command that changes rules, and confirm and revert, answers
// --json with one document: the plan it committed and what happened.
func TestCommitCommandsAnswerJSONWithTheResult(t *testing.T) {
	h := newFakeHost(t)
	doc, res := h.result(ExitOK, "apply", "-auto-approve")
	if doc["plan"] == nil {
		t.Fatal("apply --json: no plan")
	}
	expect(t, "apply", res, map[string]any{"operation": "apply", "outcome": "applied", "generation": 1, "state_dir": h.stateDir,
		"pending": nil, "error": nil, "rollback": nil, "reverted": nil, "confirmed": nil})
	if s, _ := res["summary"].(map[string]any); s == nil || s["add"].(float64) == 0 || res["lines_written"].(float64) == 0 {
		t.Errorf("apply: nothing counted: %v", res)
	}
	if d, ok := res["duration_seconds"].(float64); !ok || d < 0 {
		t.Errorf("apply: duration_seconds %v", res["duration_seconds"])
	}

	_, res = h.result(ExitOK, "apply", "-auto-approve")
	expect(t, "apply again", res, map[string]any{"outcome": "unchanged", "generation": nil, "lines_written": 0,
		"summary": map[string]any{"add": 0, "change": 0, "remove": 0, "rules_added": 0, "rules_removed": 0}})

	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	out, errs, code := h.run("apply", "-auto-approve", "--confirm-timeout", "1h", "--json")
	if code != ExitOK {
		t.Fatalf("apply --confirm-timeout --json: exit %d\n%s", code, errs)
	}
	res = oneDoc(t, []string{"apply", "--confirm-timeout"}, out)["result"].(map[string]any)
	pd, _ := res["pending"].(map[string]any)
	if pd == nil || pd["id"] == "" || pd["generation"] != 2.0 || pd["deadline"] == nil || pd["timeout_seconds"] != 3600.0 ||
		!strings.HasPrefix(pd["watcher"].(string), "in-process svcnat-revert-") {
		t.Fatalf("apply --confirm-timeout --json: pending %v", res["pending"])
	}
	if !strings.Contains(errs, "Run svcnat confirm ") {
		t.Errorf("apply --confirm-timeout --json: how to confirm is not on stderr:\n%s", errs)
	}
	id := pd["id"].(string)
	doc, res = h.result(ExitOK, "confirm", id)
	if doc["plan"] != nil {
		t.Errorf("confirm: a plan: %v", doc["plan"])
	}
	expect(t, "confirm", res, map[string]any{"operation": "confirm", "outcome": "confirmed", "generation": 2,
		"confirmed": map[string]any{"id": id, "generation": 2}})
	h.watcher(0)

	_, res = h.result(ExitOK, "rollback", "-auto-approve")
	expect(t, "rollback", res, map[string]any{"operation": "rollback", "outcome": "applied", "generation": 3,
		"rollback": map[string]any{"from": 2, "to": 1}})

	out, _, _ = h.run("apply", "-auto-approve", "--confirm-timeout", "1h", "--json")
	id = oneDoc(t, []string{"apply"}, out)["result"].(map[string]any)["pending"].(map[string]any)["id"].(string)
	_, res = h.result(ExitOK, "revert", id)
	expect(t, "revert", res, map[string]any{"operation": "revert", "outcome": "applied", "generation": 5,
		"reverted": map[string]any{"id": id, "generation": 4, "reason": "reverted with svcnat revert"}})
	h.watcher(1)

	_, res = h.result(ExitOK, "destroy", "-auto-approve")
	expect(t, "destroy", res, map[string]any{"operation": "destroy", "outcome": "applied", "error": nil})
	if s := res["summary"].(map[string]any); s["remove"].(float64) == 0 {
		t.Errorf("destroy removed nothing: %v", s)
	}
}

// A refused or failed run still answers with one document: the plan, if
// one was made, and the error, which stderr says too.
func TestCommitJSONOfARefusal(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	pinEndpoint(t, h)
	writeFile(t, h.config, "nginx.hcl", strings.Replace(nginx, "10.64.1.2", "10.64.1.9", 1))
	doc, res := h.result(ExitError, "apply", "-auto-approve")
	if doc["plan"] == nil {
		t.Error("a refused apply --json: no plan")
	}
	expect(t, "refused apply", res, map[string]any{"outcome": "refused", "generation": nil})
	if e, _ := res["error"].(map[string]any); e == nil || e["reason"] != "blocked" || !strings.Contains(e["hint"].(string), "remove or change those rules") {
		t.Errorf("refused apply: error %v", res["error"])
	}

	h = newFakeHost(t)
	doc, res = h.result(ExitError, "rollback", "-auto-approve")
	if doc["plan"] != nil {
		t.Errorf("rollback without generations: a plan %v", doc["plan"])
	}
	expect(t, "rollback without generations", res, map[string]any{"operation": "rollback", "outcome": "refused"})

	h.must(ExitOK, "apply", "-auto-approve")
	doc, res = h.result(ExitError, "confirm")
	expect(t, "confirm with nothing pending", res, map[string]any{"operation": "confirm", "outcome": "failed", "confirmed": nil})
	if e, _ := res["error"].(map[string]any); doc["plan"] != nil || e == nil || !strings.Contains(e["message"].(string), "no apply awaits confirmation") {
		t.Errorf("confirm with nothing pending: %v", doc)
	}
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	out, _, _ := h.run("apply", "-auto-approve", "--confirm-timeout", "1h")
	id := pendingID(t, out)
	_, res = h.result(ExitError, "destroy", "-auto-approve")
	if e, _ := res["error"].(map[string]any); res["outcome"] != "refused" || e == nil || e["reason"] != "pending_confirmation" {
		t.Errorf("destroy while an apply is pending: %v", res)
	}
	h.must(ExitOK, "confirm", id)
	h.watcher(0)
}

// shape lists the members of a JSON document, by path ("result.pending.id"),
// with their kind; an array's members are those of its first element. A
// null is "null", so that an example may show null where a run shows a
// value.
func shape(prefix string, v any, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		out[prefix] = "object"
		for k, e := range v {
			shape(prefix+"."+k, e, out)
		}
	case []any:
		out[prefix] = "array"
		if len(v) > 0 {
			shape(prefix+"[]", v[0], out)
		}
	case nil:
		out[prefix] = "null"
	case string:
		out[prefix] = "string"
	case float64:
		out[prefix] = "number"
	case bool:
		out[prefix] = "bool"
	}
}

// sameShape fails when example (a README block) and got (a run's
// document) differ in their members, or in the kind of one both show
// other than null.
func sameShape(t *testing.T, what string, example, got any) {
	t.Helper()
	a, b := map[string]string{}, map[string]string{}
	shape("", example, a)
	shape("", got, b)
	var diff []string
	for k, ka := range a {
		kb, ok := b[k]
		switch {
		case !ok:
			if !underEmpty(k, b) {
				diff = append(diff, "the README shows "+k+", svcnat does not")
			}
		case ka != kb && ka != "null" && kb != "null":
			diff = append(diff, k+" is "+ka+" in the README, "+kb+" from svcnat")
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && !underEmpty(k, a) {
			diff = append(diff, "svcnat prints "+k+", the README does not show it")
		}
	}
	sort.Strings(diff)
	for _, d := range diff {
		t.Errorf("%s: %s", what, d)
	}
}

// underEmpty: k is inside an array or null that the other side shows
// empty, whose members it cannot show.
func underEmpty(k string, other map[string]string) bool {
	for i := len(k) - 1; i > 0; i-- {
		if k[i] != '.' && k[i] != '[' {
			continue
		}
		parent := k[:i]
		if kind, ok := other[parent]; ok {
			_, hasMember := other[parent+"[]"]
			return kind == "null" || kind == "array" && !hasMember
		}
	}
	return false
}

// readmeJSON is the JSON block of the README right after the heading.
func readmeJSON(t *testing.T, heading string) any {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(readme, []byte("\n"+heading+"\n"))
	if i < 0 {
		t.Fatalf("README has no %q", heading)
	}
	block := readme[i:]
	j := bytes.Index(block, []byte("```json\n"))
	if j < 0 {
		t.Fatalf("README: no JSON block after %q", heading)
	}
	block = block[j+len("```json\n"):]
	block = block[:bytes.Index(block, []byte("```"))]
	var v any
	if err := json.Unmarshal(block, &v); err != nil {
		t.Fatalf("README: the block after %q is not JSON: %v\n%s", heading, err, block)
	}
	return v
}

// The README's examples of plan --json and of the results show every
// member svcnat prints, and nothing else.
func TestReadmeJSONExamples(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	out, _, _ := h.run("plan", "--json")
	plan := readmeJSON(t, "### `plan --json`").(map[string]any)
	sameShape(t, "plan --json", plan, oneDoc(t, []string{"plan", "--json"}, out))
	doc, res := h.result(ExitOK, "apply", "-auto-approve", "--confirm-timeout", "1h")
	h.must(ExitOK, "confirm", res["pending"].(map[string]any)["id"].(string))
	h.watcher(0)
	results := readmeJSON(t, "### Results as JSON").(map[string]any)
	// The plan in it is plan --json's, shown above; the versions are
	// today's.
	inner, _ := results["plan"].(map[string]any)
	if plan["format_version"] != PlanJSONVersion || inner == nil || inner["format_version"] != PlanJSONVersion ||
		results["format_version"] != ResultJSONVersion {
		t.Errorf("README: the examples' format_version are not %s (plan) and %s (results)", PlanJSONVersion, ResultJSONVersion)
	}
	results["plan"], doc["plan"] = nil, nil
	sameShape(t, "apply --json", results, doc)
}

// Blocked entries of plan --json are objects a program can read.
func TestPlanJSONBlockedIsObjects(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	sep := pinEndpoint(t, h)
	writeFile(t, h.config, "nginx.hcl", strings.Replace(nginx, "10.64.1.2", "10.64.1.9", 1))
	out, _, _ := h.run("plan", "--json")
	doc := oneDoc(t, []string{"plan", "--json"}, out)
	bl, _ := doc["blocked"].([]any)
	if len(bl) != 1 {
		t.Fatalf("blocked: %v", doc["blocked"])
	}
	expect(t, "blocked", bl[0].(map[string]any), map[string]any{"family": "ipv4", "table": "nat", "chain": "MYCHAIN",
		"rule": "-A MYCHAIN -s 10.9.9.9/32 -j " + sep, "pins": sep})
}

// Every change of plan --json says whose it is: a service, or null with
// why (a shared chain such as SERVICES, a built-in one).
func TestPlanJSONEveryChangeHasItsService(t *testing.T) {
	h := newFakeHost(t)
	out, _, _ := h.run("plan", "--json")
	doc := oneDoc(t, []string{"plan", "--json"}, out)
	seen := map[string]bool{}
	for _, c := range doc["changes"].([]any) {
		c := c.(map[string]any)
		svc, ok := c["service"]
		if !ok {
			t.Errorf("%v %v: no service member", c["table"], c["chain"])
			continue
		}
		chain, _ := c["chain"].(string)
		switch {
		case svc == nil && c["scope"] == "shared" && (chain == "SVCNAT-SERVICES" || c["builtin"] == true || !strings.Contains(chain, "-SEP-")):
		case svc == "default/nginx" && c["scope"] == "service":
		default:
			t.Errorf("%s %s: service %v, scope %v", c["table"], chain, svc, c["scope"])
		}
		seen[chain] = true
	}
	if !seen["SVCNAT-SERVICES"] || !seen["PREROUTING"] {
		t.Errorf("the plan lacks SERVICES or PREROUTING: %v", seen)
	}
}

// A stale saved plan applied with --json answers with the error too.
func TestStaleSavedPlanJSON(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	planFile := filepath.Join(t.TempDir(), "nginx.plan")
	h.must(ExitOK, "plan", "-out", planFile)
	if err := h.fake.Restore(backend.IPv4, []byte("*nat\n-A SVCNAT-SERVICES -d 1.2.3.4/32 -j RETURN\nCOMMIT\n"), iptables.NoFlushTables); err != nil {
		t.Fatal(err)
	}
	doc, res := h.result(ExitError, "apply", planFile)
	if doc["plan"] != nil {
		t.Errorf("stale plan: a plan %v", doc["plan"])
	}
	expect(t, "stale plan", res, map[string]any{"outcome": "refused", "generation": nil})
	if e, _ := res["error"].(map[string]any); e == nil || !strings.Contains(e["message"].(string), "stale plan") || e["hint"] != "run svcnat plan again" {
		t.Errorf("stale plan: error %v", res["error"])
	}
}
