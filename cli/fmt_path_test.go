package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fmt -diff names a file given by its absolute path relative to the
// working directory when it is below it, so that patch -p1 applies the
// diff there; a file elsewhere keeps its path as given.
func TestFmtDiffAbsolutePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	src := "service \"default/x\" {\ncluster_ips=[\"10.32.0.1\"]\n}\n"
	if err := os.Mkdir("conf", 0o755); err != nil {
		t.Fatal(err)
	}
	abs := writeFile(t, dir, "conf/x.hcl", src)
	out, errs, code := run(t, "fmt", "-check", "-diff", filepath.Join(dir, "conf"))
	if code != ExitFormat || !strings.HasPrefix(out, "--- a/conf/x.hcl\n+++ b/conf/x.hcl\n") {
		t.Fatalf("fmt -check -diff %s: exit %d\n%s%s", filepath.Join(dir, "conf"), code, out, errs)
	}
	if _, err := exec.LookPath("patch"); err == nil {
		cmd := exec.Command("patch", "-p1", "-s")
		cmd.Stdin = strings.NewReader(out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("patch -p1: %v\n%s", err, b)
		}
		if out, _, code := run(t, "fmt", "-check", abs); code != ExitOK {
			t.Fatalf("the patched file is not formatted: exit %d\n%s", code, out)
		}
	}
	// Outside the working directory: the path as given, which patch -p1
	// applies from /.
	elsewhere := writeFile(t, t.TempDir(), "y.hcl", src)
	out, errs, code = run(t, "fmt", "-check", "-diff", elsewhere)
	if p := strings.TrimPrefix(elsewhere, "/"); code != ExitFormat || !strings.HasPrefix(out, "--- a/"+p+"\n+++ b/"+p+"\n") {
		t.Fatalf("fmt -check -diff %s: exit %d\n%s%s", elsewhere, code, out, errs)
	}
}
