package cli

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// manSection returns the text of the man page's section name, up to the
// next one.
func manSection(page, name string) string {
	_, rest, ok := strings.Cut(page, "\n.SH "+name+"\n")
	if !ok {
		return ""
	}
	text, _, _ := strings.Cut(rest, "\n.SH ")
	return text
}

func TestManPage(t *testing.T) {
	page, errs, code := run(t, "man")
	if code != ExitOK {
		t.Fatalf("svcnat man: exit %d\n%s", code, errs)
	}
	// The sections a man page has, in their order.
	var got []string
	for _, l := range strings.Split(page, "\n") {
		if s, ok := strings.CutPrefix(l, ".SH "); ok {
			got = append(got, strings.Trim(s, `"`))
		}
	}
	want := []string{"NAME", "SYNOPSIS", "DESCRIPTION", "GLOBAL OPTIONS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"}
	if !slices.Equal(got, want) {
		t.Errorf("sections %q, want %q", got, want)
	}
	// Global flags once, under GLOBAL OPTIONS, with their defaults as they
	// are.
	if n := strings.Count(page, "rule backend"); n != 1 {
		t.Errorf("--backend is described %d times, want once", n)
	}
	opts := manSection(page, "GLOBAL OPTIONS")
	for _, want := range []string{`\fB\-\-backend\fR \fIauto\fR|\fInftables\fR|\fIiptables\-nft\fR|\fIiptables\-legacy\fR`, "(default: auto)", `(default: /var/lib/svcnat)`, `\fB\-\-config\fR, \fB\-c\fR`} {
		if !strings.Contains(opts, want) {
			t.Errorf("GLOBAL OPTIONS lack %q:\n%s", want, opts)
		}
	}
	if strings.Contains(page, `=""`) || strings.Contains(page, `default: "`) || strings.Contains(page, "(default: )") {
		t.Error(`the page shows a default quoted or empty`)
	}
	// Every command but the hidden ones, with its own flags.
	cmds := manSection(page, "COMMANDS")
	for _, c := range NewApp(Env{}).Commands {
		entry := `\fBsvcnat ` + c.Name + `\fR`
		if c.Hidden == strings.Contains(cmds, entry) {
			t.Errorf("command %s (hidden %v): in COMMANDS %v", c.Name, c.Hidden, !c.Hidden)
		}
	}
	for _, want := range []string{`\fB\-\-lock\-timeout\fR \fIDURATION\fR`, "(default: 10s)", `\fB\-\-recursive\fR`, "the destination port (required)", `\fB\-\-proto\fR \fItcp\fR|\fIudp\fR|\fIsctp\fR`} {
		if !strings.Contains(cmds, want) {
			t.Errorf("COMMANDS lack %q", want)
		}
	}
	exit := manSection(page, "EXIT STATUS")
	for _, want := range []string{".B 0\n", ".B 1\n", ".B 2\n", ".B 3\n", "detailed\\-exitcode", "fmt \\-check"} {
		if !strings.Contains(exit, want) {
			t.Errorf("EXIT STATUS lacks %q:\n%s", want, exit)
		}
	}
	// Every SVCNAT_ variable svcnat reads, flag or not.
	env := manSection(page, "ENVIRONMENT")
	for _, v := range svcnatVariables(t) {
		if !strings.Contains(env, ".B "+v+"\n") {
			t.Errorf("ENVIRONMENT lacks %s", v)
		}
	}
	if !strings.Contains(env, ".B NO_COLOR\n") {
		t.Error("ENVIRONMENT lacks NO_COLOR")
	}
	files := manSection(page, "FILES")
	for _, want := range []string{"/var/lib/svcnat/state.json", "generations/", "/var/lib/svcnat/lock", "applying.json", "created\\-tables.json", "watcher.log", "/run/svcnat/"} {
		if !strings.Contains(files, want) {
			t.Errorf("FILES lacks %q", want)
		}
	}
	for _, want := range []string{"\\-out /tmp/svcnat.plan", "svcnat completion bash"} {
		if !strings.Contains(manSection(page, "EXAMPLES"), want) {
			t.Errorf("EXAMPLES lack %q", want)
		}
	}
	if !strings.Contains(manSection(page, "SEE ALSO"), ".BR iptables (8)") {
		t.Error("SEE ALSO lacks iptables(8)")
	}
	// groff reads it without a warning.
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("no groff")
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("groff: %v\n%s", err, stderr.String())
	}
}

// svcnatVariables lists the SVCNAT_ variables named in svcnat's code
// (tests, the test suite's tools and the benchmark generator left out).
func svcnatVariables(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`"(SVCNAT_[A-Z0-9_]+)"`)
	var vars []string
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// The benchmark generator and the test suite's tools are not svcnat:
		// their variables are make bench's, not the command's.
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != "../.." ||
			path == filepath.Join("../..", "internal", "bench") || path == filepath.Join("../..", "integration")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(vars, m[1]) {
				vars = append(vars, m[1])
			}
		}
		return nil
	})
	if err != nil || len(vars) < 10 {
		t.Fatalf("SVCNAT_ variables in the code: %v %v", vars, err)
	}
	return vars
}
