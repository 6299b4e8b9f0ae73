package cli

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// Any diff writeUnifiedDiff writes, patch applies to give the new text:
// random files, random edits, blank lines and missing last newlines.
func TestUnifiedDiffPatchRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("no patch")
	}
	dir := t.TempDir()
	rnd := rand.New(rand.NewPCG(1, 2))
	text := func(lines []string, nl bool) string {
		s := strings.Join(lines, "\n")
		if nl && s != "" {
			s += "\n"
		}
		return s
	}
	for i := range 40 {
		var a []string
		for range rnd.IntN(30) {
			a = append(a, []string{"", "x", "y", "port {", "}", fmt.Sprint(rnd.IntN(5))}[rnd.IntN(6)])
		}
		b := slices.Clone(a)
		for range rnd.IntN(6) {
			switch j := rnd.IntN(len(b) + 1); {
			case rnd.IntN(2) == 0 || j == len(b):
				b = slices.Insert(b, j, fmt.Sprint("new ", rnd.IntN(3)))
			default:
				b = slices.Delete(b, j, j+1)
			}
		}
		before, after := text(a, rnd.IntN(4) > 0), text(b, rnd.IntN(4) > 0)
		if before == after {
			continue
		}
		var diff strings.Builder
		if err := writeUnifiedDiff(&diff, "f.hcl", before, after); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "f.hcl")
		if err := os.WriteFile(f, []byte(before), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("patch", "-p1", "-s", "-F0", "-i", "-")
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(diff.String())
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("case %d: patch: %v\n%s\nbefore %q\nafter %q\n%s", i, err, b, before, after, diff.String())
		}
		got, err := os.ReadFile(f)
		if err != nil || string(got) != after {
			t.Fatalf("case %d: patched %q, want %q\n%s", i, got, after, diff.String())
		}
	}
}
