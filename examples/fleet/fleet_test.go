// Package fleet_test checks the fleet example as CI would run it: every
// box's assembled configuration validates, is formatted, and plans against
// the box's saved rules, without root.
package fleet_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/cli"
)

func svcnat(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := cli.Main(args, strings.NewReader(""), &out, &out)
	return out.String(), code
}

func TestEveryBox(t *testing.T) {
	boxes, err := filepath.Glob("repo/nodes/*")
	if err != nil || len(boxes) < 2 {
		t.Fatalf("boxes: %v %v", boxes, err)
	}
	if out, code := svcnat(t, "fmt", "-check", "-recursive", "repo"); code != 0 {
		t.Fatalf("fmt -check: exit %d\n%s", code, out)
	}
	for _, dir := range boxes {
		box := filepath.Base(dir)
		out := filepath.Join(t.TempDir(), box)
		if b, err := exec.Command("sh", "repo/svcnat-assemble", "repo", box, out).CombinedOutput(); err != nil {
			t.Fatalf("svcnat-assemble %s: %v\n%s", box, err, b)
		}
		files, _ := filepath.Glob(filepath.Join(out, "*.hcl"))
		if len(files) < 3 {
			t.Fatalf("%s assembled %v", box, files)
		}
		if text, code := svcnat(t, "validate", "-c", out, "--node", box); code != 0 {
			t.Fatalf("validate %s: exit %d\n%s", box, code, text)
		}
		text, code := svcnat(t, "plan", "-c", out, "--node", box, "--iptables-save", "repo/dumps/"+box+".rules", "--detailed-exitcode")
		if code != 2 || !strings.Contains(text, "+ service default/web") {
			t.Fatalf("plan %s: exit %d\n%s", box, code, text)
		}
	}
	// The override: edge-2's settings replace the shared ones.
	b, _ := os.ReadFile("repo/nodes/edge-2/settings.hcl")
	if !bytes.Contains(b, []byte("node_port_addresses")) {
		t.Fatal("edge-2 overrides nothing")
	}
}
