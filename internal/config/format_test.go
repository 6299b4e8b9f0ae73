package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFormatFile(t *testing.T) {
	in := "service \"web\" {\ncluster_ips=[\"10.0.0.1\"]\n  type =   \"NodePort\"\n  port {\n      port = 80\n  node_port = 30080\n  }\n}\n"
	want := "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  type        = \"NodePort\"\n  port {\n    port      = 80\n    node_port = 30080\n  }\n}\n"

	res, diags := FormatFile("web.hcl", []byte(in))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !res.Changed || string(res.Formatted) != want {
		t.Errorf("FormatFile: changed=%v\n%s\nwant:\n%s", res.Changed, res.Formatted, want)
	}
	// Formatting the formatted form changes nothing.
	res, _ = FormatFile("web.hcl", res.Formatted)
	if res.Changed || string(res.Formatted) != want {
		t.Errorf("formatting is not idempotent:\n%s", res.Formatted)
	}
}

// fmt lays out a health_check block as any other nested block, and
// what it writes means the same.
func TestFormatFileHealthCheck(t *testing.T) {
	in := "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = 80\n  }\n" +
		"health_check {\nprotocol=\"http\"\n      path = \"/healthz\" # comment kept\n  interval =\"5s\"\n    fall= 2\n}\n}\n"
	want := "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = 80\n  }\n" +
		"  health_check {\n    protocol = \"http\"\n    path     = \"/healthz\" # comment kept\n    interval = \"5s\"\n    fall     = 2\n  }\n}\n"
	res, diags := FormatFile("web.hcl", []byte(in))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !res.Changed || string(res.Formatted) != want {
		t.Errorf("FormatFile: changed=%v\n%s\nwant:\n%s", res.Changed, res.Formatted, want)
	}
	if again, _ := FormatFile("web.hcl", res.Formatted); again.Changed {
		t.Errorf("formatting is not idempotent:\n%s", again.Formatted)
	}
	a, diags := Parse(map[string][]byte{"web.hcl": []byte(in)})
	b, bdiags := Parse(map[string][]byte{"web.hcl": res.Formatted})
	if diags.HasErrors() || bdiags.HasErrors() {
		t.Fatal(diags, bdiags)
	}
	clearRanges(a)
	clearRanges(b)
	if asJSON(t, a) != asJSON(t, b) || a.Services[0].HealthCheck == nil || a.Services[0].HealthCheck.Fall != 2 {
		t.Errorf("formatting changed the configuration:\n%s\n%s", asJSON(t, a), asJSON(t, b))
	}
}

// A file hcl cannot parse is reported, not re-spaced.
func TestFormatFileSyntaxError(t *testing.T) {
	res, diags := FormatFile("bad.hcl", []byte("service \"web\" {\n  port = [\n"))
	if !diags.HasErrors() || res.Formatted != nil || res.Changed || res.File == nil {
		t.Errorf("FormatFile = %+v, %v", res, diags)
	}
}

// The testdata files are kept formatted, and their formatted form parses
// to the same configuration (formatting changes whitespace only).
func TestTestdataFormatted(t *testing.T) {
	names, _ := filepath.Glob("testdata/good/*.hcl")
	srcs := map[string][]byte{}
	formatted := map[string][]byte{}
	for _, n := range names {
		src, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		res, diags := FormatFile(n, src)
		if diags.HasErrors() || res.Changed {
			t.Errorf("%s is not formatted (%v):\n%s", n, diags, res.Formatted)
		}
		srcs[n], formatted[n] = src, res.Formatted
	}
	a, _ := Parse(srcs)
	b, _ := Parse(formatted)
	clearRanges(a)
	clearRanges(b)
	if asJSON(t, a) != asJSON(t, b) {
		t.Errorf("formatting changed the configuration")
	}
}

// fmt refuses what Load refuses before parsing, rather than crash on it.
func TestFormatFileDeepNesting(t *testing.T) {
	src := "x = " + strings.Repeat("(", 80000) + "1" + strings.Repeat(")", 80000) + "\n"
	res, diags := FormatFile("deep.hcl", []byte(src))
	if !diags.HasErrors() || diags[0].Summary != "configuration nested too deeply" || res.Formatted != nil {
		t.Errorf("FormatFile = %v", diags)
	}
}

// FormatNames -recursive does not follow a link to a directory (it could
// loop), and a *.hcl entry that is no regular file is an error naming it,
// as in Load.
func TestFormatNamesRecursiveLinks(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "a.hcl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(sub, "loop")); err != nil {
		t.Fatal(err)
	}
	names, diags := FormatNames(dir, true)
	if diags.HasErrors() || len(names) != 1 || names[0] != filepath.Join(sub, "a.hcl") {
		t.Fatalf("FormatNames = %v, %v", names, diags)
	}
	if err := os.Symlink("nowhere", filepath.Join(sub, "gone.hcl")); err != nil {
		t.Fatal(err)
	}
	_, diags = FormatNames(dir, true)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "gone.hcl") {
		t.Fatalf("a dangling link: %v", diags)
	}
}
