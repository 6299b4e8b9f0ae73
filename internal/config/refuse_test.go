package config

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/svcnat/svcnat/internal/bench"
)

// loadBounded runs Load in a goroutine and fails the test when it has not
// returned within 10 s: a FIFO used to block Load in open(2) for good, and
// the test must report that rather than hang the suite.
func loadBounded(t *testing.T, path string) (*Config, hcl.Diagnostics) {
	t.Helper()
	type result struct {
		cfg   *Config
		diags hcl.Diagnostics
	}
	done := make(chan result, 1)
	go func() {
		cfg, diags := Load(path)
		done <- result{cfg, diags}
	}()
	select {
	case r := <-done:
		return r.cfg, r.diags
	case <-time.After(10 * time.Second):
		t.Fatalf("Load(%s) has not returned after 10s", path)
		return nil, nil
	}
}

// diagText is every diagnostic's summary and detail, for matching.
func diagText(diags hcl.Diagnostics) string {
	return strings.Join(DiagnosticLines(diags), "\n")
}

const goodService = "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = 80\n  }\n}\n"

// Every *.hcl entry of a configuration directory that is not a readable
// regular file is an error naming it: skipping it would remove its
// services in silence (a failed checkout swap leaves dangling links).
func TestLoadRefusesWhatIsNotARegularFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		make  func(t *testing.T, path string)
		words string
	}{
		{"dangling symlink", func(t *testing.T, p string) {
			if err := os.Symlink(filepath.Join(filepath.Dir(p), "gone.hcl"), p); err != nil {
				t.Fatal(err)
			}
		}, "no such file"},
		{"symlink loop", func(t *testing.T, p string) {
			if err := os.Symlink(p, p); err != nil {
				t.Fatal(err)
			}
		}, "too many levels of symbolic links"},
		{"directory", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"fifo", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"symlink to fifo", func(t *testing.T, p string) {
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(fifo, p); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "a.hcl", goodService)
			bad := filepath.Join(dir, "x.hcl")
			tc.make(t, bad)
			paths := []string{dir, bad}
			if tc.name == "directory" {
				paths = paths[:1] // -c x.hcl naming a directory reads the directory
			}
			for _, path := range paths {
				cfg, diags := loadBounded(t, path)
				if !diags.HasErrors() || cfg.Services != nil {
					t.Fatalf("Load(%s) accepted it: %d services, %v", path, len(cfg.Services), diags)
				}
				text := diagText(diags)
				if !strings.Contains(text, bad) || !strings.Contains(text, tc.words) {
					t.Errorf("Load(%s): want an error naming %s and saying %q, got:\n%s", path, bad, tc.words, text)
				}
			}
		})
	}
}

// A file read between the directory listing and the open (a race with a
// checkout) is still refused if it is not a regular file, without
// blocking: ReadFile opens without waiting and checks what it opened.
func TestReadFileRefusesFIFOWithoutBlocking(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "x.hcl")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan *hcl.Diagnostic, 1)
	go func() {
		_, d := ReadFile(fifo)
		done <- d
	}()
	select {
	case d := <-done:
		if d == nil || !strings.Contains(d.Detail, fifo) || !strings.Contains(d.Detail, "not a regular file") {
			t.Errorf("ReadFile(fifo) = %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadFile(fifo) has not returned after 10s")
	}
}

// Deep nesting is refused with its place before hcl's recursive parser
// sees it: 80,000 parentheses overflowed the stack and killed every
// command and the daemon, a fatal error no recover catches.
func TestDeepNestingRefused(t *testing.T) {
	const n = 80000
	rep := strings.Repeat
	for _, tc := range []struct{ name, src string }{
		{"parentheses", "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = " + rep("(", n) + "80" + rep(")", n) + "\n  }\n}\n"},
		{"unclosed parentheses", "service \"web\" {\n  port {\n    port = " + rep("(", n) + "\n"},
		{"brackets", "x = " + rep("[", n) + rep("]", n) + "\n"},
		{"objects", "x = " + rep("{a=", n) + "1" + rep("}", n) + "\n"},
		{"blocks", rep("a {\n", n) + rep("}\n", n)},
		{"negation", "x = " + rep("-", n) + "1\n"},
		{"not", "x = " + rep("!", n) + "true\n"},
		{"conditionals", "x = " + rep("true ? 1 : ", n) + "1\n"},
		{"templates", "x = " + rep("\"${", n) + "1" + rep("}\"", n) + "\n"},
		{"template ifs", "x = \"" + rep("%{if true}", n) + rep("%{endif}", n) + "\"\n"},
		// Chains parse in a loop but evaluate by recursion, as deep as
		// they are long: two million terms overflowed the stack.
		{"sum", "x = 1" + rep("+1", n) + "\n"},
		{"sum over lines in parentheses", "x = (1" + rep("\n+1", n) + ")\n"},
		{"and", "x = true" + rep(" && true", n) + "\n"},
		{"index chain", "x = [1]" + rep("[0]", n) + "\n"},
		{"attribute chain", "x = a" + rep(".b", n) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "deep.hcl", tc.src)
			cfg, diags := loadBounded(t, dir)
			if !diags.HasErrors() {
				t.Fatal("accepted")
			}
			found := false
			for _, d := range diags {
				if d.Summary == "configuration nested too deeply" {
					found = true
					if d.Subject == nil || d.Subject.Filename != filepath.Join(dir, "deep.hcl") || d.Subject.Start.Line < 1 {
						t.Errorf("nesting diagnostic not located: %v", d.Subject)
					}
				}
			}
			if !found {
				t.Fatalf("no nesting diagnostic: %s", diagText(diags))
			}
			var b bytes.Buffer
			if err := WriteDiagnostics(&b, cfg.Files, diags, false, 0); err != nil || b.Len() > 10000 {
				t.Errorf("WriteDiagnostics: %v, %d bytes", err, b.Len())
			}
		})
	}
	// What a sane configuration writes stays accepted, however long:
	// commas end list items, and newlines end a body's.
	ok := "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = " + rep("(", 50) + "40+40" + rep(")", 50) + "\n  }\n}\n" +
		"settings {\n  cluster_cidrs = [" + rep("\"10.0.0.0/8\", ", n) + "]\n}\n" +
		rep("# a - b + c ? d\n", n)
	_, diags := Parse(map[string][]byte{"ok.hcl": []byte(ok)})
	for _, d := range diags {
		if d.Summary == "configuration nested too deeply" {
			t.Errorf("a sane configuration refused: %v", d)
		}
	}
}

// A file over MaxFileSize is refused by its size, before it is read whole.
func TestFileSizeLimit(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.hcl")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: the test writes no 16 MB; the check must not read it either.
	if err := f.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, diags := loadBounded(t, dir)
	if !diags.HasErrors() || !strings.Contains(diagText(diags), big) || !strings.Contains(diagText(diags), "larger than") {
		t.Errorf("Load of a %d-byte file: %s", MaxFileSize+1, diagText(diags))
	}
	_, diags = Parse(map[string][]byte{"big.hcl": make([]byte, MaxFileSize+1)})
	if !diags.HasErrors() || !strings.Contains(diagText(diags), "larger than") {
		t.Errorf("Parse of a %d-byte file: %s", MaxFileSize+1, diagText(diags))
	}
}

// Diagnostics quote what they found, but never whole: a 50 MB service
// name printed 150 MB of stderr (the summary, the "in service" context
// and the source line).
func TestDiagnosticsEchoBounded(t *testing.T) {
	long := strings.Repeat("a", 1<<20)
	for _, tc := range []struct{ name, src string }{
		{"service name", "service \"" + long + "\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = 70000\n  }\n}\n"},
		{"attribute name", "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  " + long + " = 1\n  port {\n    port = 80\n  }\n}\n"},
		{"address", "service \"web\" {\n  cluster_ips = [\"" + long + "\"]\n  port {\n    port = 80\n  }\n}\n"},
		{"many lines", "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = [" + strings.Repeat("\n1,", 1<<12) + "]\n  }\n}\n"},
		{"long line", "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = 70000" + strings.Repeat(" ", 1<<20) + "}\n}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse(map[string][]byte{"long.hcl": []byte(tc.src)})
			if !diags.HasErrors() {
				t.Fatal("accepted")
			}
			var text, js bytes.Buffer
			if err := WriteDiagnostics(&text, cfg.Files, diags, true, 0); err != nil {
				t.Fatal(err)
			}
			if text.Len() > 10000 {
				t.Errorf("WriteDiagnostics wrote %d bytes:\n%.2000s", text.Len(), text.String())
			}
			if !strings.Contains(text.String(), "more bytes") && !strings.Contains(text.String(), "more lines") {
				t.Errorf("the cut is not said:\n%.2000s", text.String())
			}
			if err := WriteDiagnosticsJSON(&js, diags); err != nil || js.Len() > 10000 || !json.Valid(js.Bytes()) {
				t.Errorf("WriteDiagnosticsJSON: %v, %d bytes", err, js.Len())
			}
			if n := len(diagText(diags)); n > 10000 {
				t.Errorf("DiagnosticLines: %d bytes", n)
			}
		})
	}
}

// quickNesting clears plain configurations without hcl's lexer, and is
// never below the lexer's depth where it is sure; FuzzParse checks the
// same on any input.
func TestQuickNesting(t *testing.T) {
	for _, src := range []string{
		goodService,
		"x = \"a\\\"b(((\" # ((((\n// [[[\ny = [1, -2, 3] // x\n",
		"x = {a = 1, b = [1 + 2 * 3 > 4 && !true ? 1.5e-3 : -1]}\n",
		"x = a[0][1].b\ny = \"é\"\n",
		"a {\n  b {\n    c = (1\n + 2)\n  }\n}\n",
	} {
		quick, sure := quickNesting([]byte(src), math.MaxInt)
		exact, _ := tokenNesting("x.hcl", []byte(src), math.MaxInt)
		if !sure || quick < exact {
			t.Errorf("quickNesting(%q) = %d, %v; the tokens nest %d deep", src, quick, sure, exact)
		}
	}
	// What it does not model it leaves to the lexer.
	for _, src := range []string{
		"x = \"${1}\"\n", "x = \"%{if true}a%{endif}\"\n", "x = <<EOF\na\nEOF\n", "/* c */\n",
		"x = \"a\\\n\"\n", "x = \"a\nb\"\n", "x = $1\n", "x = \"\xff\"\n", "x = \"a\\${1}\"\n",
		"x = %{if\n}\n",
	} {
		if _, sure := quickNesting([]byte(src), math.MaxInt); sure {
			t.Errorf("quickNesting(%q) is sure", src)
		}
	}
	// Generated configurations (internal/bench) never reach the lexer.
	for name, src := range bench.Files(bench.Spec{Services: 1000, Endpoints: 5}) {
		if depth, sure := quickNesting([]byte(src), MaxNesting); !sure {
			t.Fatalf("%s: quickNesting not sure (bound %d)", name, depth)
		}
	}
}
