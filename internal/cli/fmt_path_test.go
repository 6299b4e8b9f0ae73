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
	// Given with "..", below the working directory all the same.
	t.Chdir("conf")
	writeFile(t, ".", "x.hcl", src)
	out, errs, code = run(t, "fmt", "-check", "-diff", "../conf")
	if code != ExitFormat || !strings.HasPrefix(out, "--- a/x.hcl\n+++ b/x.hcl\n") {
		t.Fatalf("fmt -check -diff ../conf: exit %d\n%s%s", code, out, errs)
	}
	// Outside the working directory, given either way: the absolute
	// path, which patch -p1 applies from / (patch refuses "..").
	other := t.TempDir()
	elsewhere := writeFile(t, other, "y.hcl", src)
	rel, err := filepath.Rel(filepath.Join(dir, "conf"), elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{elsewhere, rel} {
		out, errs, code = run(t, "fmt", "-check", "-diff", arg)
		if p := strings.TrimPrefix(elsewhere, "/"); code != ExitFormat || !strings.HasPrefix(out, "--- a/"+p+"\n+++ b/"+p+"\n") {
			t.Fatalf("fmt -check -diff %s: exit %d\n%s%s", arg, code, out, errs)
		}
	}
}
