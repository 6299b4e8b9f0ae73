package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// A jump loop in a dump cuts the path at the jump depth limit: trace says
// so, in text and in JSON, and claims no verdict for it.
func TestTraceOfAJumpLoopSaysThePathIsCut(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.hcl", nginx)
	dump := writeFile(t, t.TempDir(), "dump", "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:LOOP-A - [0:0]\n:LOOP-B - [0:0]\n"+
		"-A INPUT -p tcp -m tcp --dport 22 -j LOOP-A\n-A INPUT -j ACCEPT\n-A LOOP-A -j LOOP-B\n-A LOOP-B -j LOOP-A\nCOMMIT\n")
	args := []string{"trace", "--live", "-c", dir, "--node", "n1", "--iptables-save", dump, "--no-color",
		"--src", "192.0.2.2", "--dst", "127.0.0.1", "--dport", "22"}
	out, errs, code := run(t, args...)
	if code != ExitOK || !strings.Contains(out, "\n  path cut: jump depth 64 reached at LOOP-A\n") || strings.Contains(out, "verdict") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = run(t, append(args, "--json")...)
	var j struct {
		Paths []map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &j); code != ExitOK || err != nil || len(j.Paths) != 1 {
		t.Fatalf("exit %d, %v\n%s%s", code, err, out, errs)
	}
	p := j.Paths[0]
	cut, _ := p["cut"].(map[string]any)
	if _, ok := p["verdict"]; ok || cut["chain"] != "LOOP-A" || cut["depth"] != 64.0 {
		t.Fatalf("trace --json of the cut path: %v", p)
	}
}
