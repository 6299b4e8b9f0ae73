package config

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// Test sources mark the diagnostics they expect with a comment at the end
// of the offending line, as Go's analysistest does:
//
//	port = 70000 # want: port out of range
//
// Several expected summaries on one line are separated by " ; ". Every
// error a source produces must be wanted and every want must be produced,
// so a check that starts reporting follow-on errors fails its test.
const wantMarker = "# want: "

type wantDiag struct {
	file    string
	line    int
	summary string // a substring of the diagnostic's summary
}

func (w wantDiag) String() string { return fmt.Sprintf("%s:%d: %q", w.file, w.line, w.summary) }

// wants collects the want markers of every file.
func wants(files map[string]string) []wantDiag {
	var out []wantDiag
	for name, src := range files {
		for i, line := range strings.Split(src, "\n") {
			_, after, ok := strings.Cut(line, wantMarker)
			if !ok {
				continue
			}
			for _, s := range strings.Split(after, " ; ") {
				out = append(out, wantDiag{file: name, line: i + 1, summary: strings.TrimSpace(s)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func toBytes(files map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(files))
	for n, s := range files {
		out[n] = []byte(s)
	}
	return out
}

// checkWants matches diags against the want markers of files.
func checkWants(t *testing.T, files map[string]string, diags hcl.Diagnostics) {
	t.Helper()
	ws := wants(files)
	used := make([]bool, len(ws))
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			t.Errorf("unexpected non-error diagnostic: %s", d)
			continue
		}
		if d.Subject == nil {
			t.Errorf("diagnostic without a subject: %s", d)
			continue
		}
		found := false
		for i, w := range ws {
			if !used[i] && w.file == d.Subject.Filename && w.line == d.Subject.Start.Line && strings.Contains(d.Summary, w.summary) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("unexpected diagnostic %s: %s; %s", pos(*d.Subject), d.Summary, d.Detail)
		}
	}
	for i, w := range ws {
		if !used[i] {
			t.Errorf("missing diagnostic %s", w)
		}
	}
}

// one is a configuration of a single file named bad.hcl.
func one(src string) map[string]string { return map[string]string{"bad.hcl": src} }
