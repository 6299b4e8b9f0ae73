package config

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// One run reports every error, sorted by position.
func TestAllErrorsAtOnce(t *testing.T) {
	const name = "testdata/bad/many.hcl"
	src, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := Load(name)
	files := map[string]string{name: string(src)}
	if n := len(wants(files)); len(diags) != n || n < 10 {
		t.Errorf("got %d diagnostics, want all %d", len(diags), n)
	}
	checkWants(t, files, diags)
	for i := 1; i < len(diags); i++ {
		if a, b := diags[i-1].Subject, diags[i].Subject; a.Start.Byte > b.Start.Byte {
			t.Errorf("diagnostics out of order: %s before %s", pos(*a), pos(*b))
		}
	}
	if cfg.Files[name] == nil {
		t.Errorf("Files lacks %s", name)
	}
}

func TestWriteDiagnostics(t *testing.T) {
	src := "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = 70000\n  }\n}\n"
	cfg, diags := Parse(map[string][]byte{"web.hcl": []byte(src)})
	var b strings.Builder
	if err := WriteDiagnostics(&b, cfg.Files, diags, false, 78); err != nil {
		t.Fatal(err)
	}
	want := `Error: web.hcl:4:5: port out of range

  on web.hcl line 4, in service "web":
   4:     port = 70000

port is 70000; a port must be between 1 and 65535.

`
	if b.String() != want {
		t.Errorf("WriteDiagnostics:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	if err := WriteDiagnostics(&b, cfg.Files, diags, true, 0); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\x1b[1;4mport = 70000\x1b[0m") {
		t.Errorf("colour output does not highlight the attribute:\n%q", b.String())
	}
}

// A diagnostic without a source (an unreadable file) prints without one.
func TestWriteDiagnosticsNoSubject(t *testing.T) {
	cfg, diags := Load(t.TempDir())
	var b strings.Builder
	if err := WriteDiagnostics(&b, cfg.Files, diags, false, 0); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "Error: no configuration files\n") {
		t.Errorf("got %q", b.String())
	}
}

func TestWriteDiagnosticsJSON(t *testing.T) {
	src := "service \"web\" {\n  cluster_ips = [\"10.0.0.1\"]\n  port {\n    port = 70000\n  }\n}\n"
	_, diags := Parse(map[string][]byte{"web.hcl": []byte(src)})
	var b strings.Builder
	if err := WriteDiagnosticsJSON(&b, diags); err != nil {
		t.Fatal(err)
	}
	var got jsonDiagnostics
	if err := json.Unmarshal([]byte(b.String()), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b.String())
	}
	d := got.Diagnostics
	if got.FormatVersion != "1" || got.Valid || got.ErrorCount != 1 || len(d) != 1 || d[0].Severity != "error" ||
		d[0].Summary != "port out of range" || !strings.Contains(d[0].Detail, "70000") || d[0].Range == nil ||
		d[0].Range.Filename != "web.hcl" || d[0].Range.Start.Line != 4 || d[0].Range.Start.Column != 5 || d[0].Range.End.Line != 4 {
		t.Fatalf("diagnostics JSON:\n%s", b.String())
	}
	b.Reset()
	if err := WriteDiagnosticsJSON(&b, nil); err != nil || !strings.Contains(b.String(), `"valid": true`) || !strings.Contains(b.String(), `"diagnostics": []`) {
		t.Fatalf("no diagnostics: %v\n%s", err, b.String())
	}
}

func TestDiagnosticLines(t *testing.T) {
	_, diags := Parse(map[string][]byte{"a.hcl": []byte("service \"x\" {\n  nope = 1\n}\n")})
	lines := DiagnosticLines(diags)
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "a.hcl:1:1: service has no cluster IP: ") || !strings.HasPrefix(lines[2], "a.hcl:2:3: Unsupported argument: ") {
		t.Fatalf("lines: %q", lines)
	}
}
