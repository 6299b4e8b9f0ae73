package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const unformatted = "service \"default/x\" {\ncluster_ips=[\"10.32.0.1\"]\n  port {\n port = 80\n }\n}\n"

// fmt -recursive works on a repository's layout: every directory below
// the one given, but not dot directories, and none of them needs *.hcl
// files of its own.
func TestFmtRecursive(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"sub/deeper", ".git", "empty"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	top := writeFile(t, dir, "a.hcl", unformatted)
	sub := writeFile(t, dir, "sub/b.hcl", unformatted)
	writeFile(t, dir, "sub/deeper/c.hcl", nginx)
	hidden := writeFile(t, dir, ".git/d.hcl", unformatted)

	out, errs, code := run(t, "fmt", "-check", "-recursive", dir)
	if code != ExitFormat || out != top+"\n"+sub+"\n" {
		t.Fatalf("fmt -check -recursive: exit %d, want 3\n%s%s", code, out, errs)
	}
	if b, _ := os.ReadFile(sub); string(b) != unformatted {
		t.Fatal("fmt -check -recursive changed a file")
	}
	// Without -recursive a directory is its own files only.
	if out, _, code := run(t, "fmt", "-check", filepath.Join(dir, "sub")); code != ExitFormat || out != sub+"\n" {
		t.Fatalf("fmt -check sub: exit %d\n%s", code, out)
	}
	if out, errs, code := run(t, "fmt", "-recursive", dir); code != ExitOK || out != top+"\n"+sub+"\n" {
		t.Fatalf("fmt -recursive: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := run(t, "fmt", "-check", "-recursive", dir); code != ExitOK || out != "" {
		t.Fatalf("fmt -check -recursive after fmt: exit %d\n%s%s", code, out, errs)
	}
	if b, _ := os.ReadFile(hidden); string(b) != unformatted {
		t.Fatal("fmt -recursive entered a dot directory")
	}
	// A tree without any *.hcl file is an error, as a directory is.
	_, errs, code = run(t, "fmt", "-check", "-recursive", filepath.Join(dir, "empty"))
	if code != ExitError || !strings.Contains(errs, "no configuration files") {
		t.Fatalf("fmt -recursive of a tree without files: exit %d\n%s", code, errs)
	}
}

// The examples are kept formatted, the fleet's repository layout included.
func TestFmtExamples(t *testing.T) {
	if out, errs, code := run(t, "fmt", "-check", "-recursive", "../../examples"); code != ExitOK {
		t.Fatalf("fmt -check -recursive examples: exit %d\n%s%s", code, out, errs)
	}
}

// fmt -diff prints a unified diff that patch applies.
func TestFmtDiffUnified(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Mkdir("conf", 0o755); err != nil {
		t.Fatal(err)
	}
	// Twelve formatted lines between two changes: two hunks, three lines
	// of context each; a blank line kept; no newline at the end.
	src := "service \"default/x\" {\ncluster_ips=[\"10.32.0.1\"]\n\n" +
		strings.Repeat("  port {\n    port = 80\n  }\n", 4) +
		"  port {\n port = 81\n  }\n}"
	writeFile(t, ".", "conf/x.hcl", src)
	out, errs, code := run(t, "fmt", "-check", "-diff", "conf")
	want := `--- a/conf/x.hcl
+++ b/conf/x.hcl
@@ -1,5 +1,5 @@
 service "default/x" {
-cluster_ips=["10.32.0.1"]
+  cluster_ips = ["10.32.0.1"]
 
   port {
     port = 80
@@ -14,6 +14,6 @@
     port = 80
   }
   port {
- port = 81
+    port = 81
   }
 }
\ No newline at end of file
`
	if code != ExitFormat || out != want {
		t.Fatalf("fmt -check -diff: exit %d\n%s%s\nwant:\n%s", code, out, errs, want)
	}
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("no patch to apply the diff with")
	}
	if err := os.WriteFile("fmt.patch", []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("patch", "-p1", "--dry-run", "-i", "fmt.patch").CombinedOutput(); err != nil {
		t.Fatalf("patch -p1 --dry-run: %v\n%s", err, b)
	}
	if b, err := exec.Command("patch", "-p1", "-i", "fmt.patch").CombinedOutput(); err != nil {
		t.Fatalf("patch -p1: %v\n%s", err, b)
	}
	if out, _, code := run(t, "fmt", "-check", "conf"); code != ExitOK {
		t.Fatalf("the patched file is not formatted: exit %d\n%s", code, out)
	}
}
