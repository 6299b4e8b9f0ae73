package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/mitchellh/go-wordwrap"

	"github.com/svcnat/svcnat/internal/echo"
)

// pos renders where a range starts as file:line:column, the form editors
// and terminals turn into links.
func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// sortDiagnostics orders diagnostics by where they point (those without a
// subject, such as unreadable files, first), so a run's report reads top to
// bottom through the files whatever order the checks ran in. The sort is
// stable: diagnostics at one position keep their order.
func sortDiagnostics(diags hcl.Diagnostics, fileOrder map[string]int) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			fa, oka := fileOrder[a.Filename]
			fb, okb := fileOrder[b.Filename]
			if oka && okb {
				return fa < fb
			}
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}

// WriteDiagnostics writes diags as text in hcl's layout: severity and
// summary, the source snippet with the offending range highlighted (when
// color is on), and the detail wrapped at width (0: no wrapping). files
// gives the sources for the snippets; pass Config.Files, which Load and
// Parse fill even when they fail. Each summary is prefixed with
// file:line:column, which hcl's writer does not print on its own.
//
// It renders the snippet itself rather than with hcl's writer, which
// prints every source line of the range whole and the enclosing block's
// labels whole: a 50 MB service name came out three times. Here each part
// of a line (before, in and after the highlight), the "in service" context
// and the number of lines are cut, and the cut is said.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, color bool, width uint) error {
	bw := bufio.NewWriter(w)
	for _, d := range diags {
		writeDiagnostic(bw, files, d, color, width)
	}
	return bw.Flush()
}

// maxSnippetLines is how many source lines a snippet shows at most.
const maxSnippetLines = 10

func writeDiagnostic(w *bufio.Writer, files map[string]*hcl.File, d *hcl.Diagnostic, color bool, width uint) {
	var colorCode, highlightCode, resetCode string
	severity := "Error"
	if d.Severity == hcl.DiagWarning {
		severity = "Warning"
	}
	if color {
		colorCode, highlightCode, resetCode = "\x1b[31m", "\x1b[1;4m", "\x1b[0m"
		if d.Severity == hcl.DiagWarning {
			colorCode = "\x1b[33m"
		}
	}
	summary := d.Summary
	if d.Subject != nil {
		summary = pos(*d.Subject) + ": " + summary
	}
	fmt.Fprintf(w, "%s%s%s: %s\n\n", colorCode, severity, resetCode, summary)
	if r := d.Subject; r != nil {
		file := files[r.Filename]
		if file == nil || file.Bytes == nil {
			fmt.Fprintf(w, "  on %s line %d:\n  (source code not available)\n\n", r.Filename, r.Start.Line)
		} else {
			writeSnippet(w, file, d, highlightCode, resetCode)
		}
	}
	if d.Detail != "" {
		detail := d.Detail
		if width != 0 {
			detail = wordwrap.WrapString(detail, width)
		}
		fmt.Fprintf(w, "%s\n\n", detail)
	}
}

// writeSnippet writes the lines of the subject (and context) range of d,
// found from their byte offsets rather than by scanning the file from its
// start, so that many diagnostics in a large file stay cheap.
func writeSnippet(w *bufio.Writer, file *hcl.File, d *hcl.Diagnostic, highlightCode, resetCode string) {
	src := file.Bytes
	clamp := func(b int) int { return min(max(b, 0), len(src)) }
	snip, hl := *d.Subject, *d.Subject
	if d.Context != nil {
		snip = hcl.RangeOver(snip, *d.Context)
	}
	hs, he := clamp(hl.Start.Byte), clamp(hl.End.Byte)
	if he == hs {
		he = clamp(he + 1) // an empty range is shown as its next character
	}

	context := ""
	if cs, ok := file.Nav.(interface{ ContextString(int) string }); ok {
		if c := cs.ContextString(d.Subject.Start.Byte); c != "" {
			context = ", in " + echo.Text(c)
		}
	}
	fmt.Fprintf(w, "  on %s line %d%s:\n", d.Subject.Filename, d.Subject.Start.Line, context)

	start := clamp(snip.Start.Byte)
	start = bytes.LastIndexByte(src[:start], '\n') + 1
	end := max(clamp(snip.End.Byte), min(start+1, len(src)))
	line := snip.Start.Line
	for shown := 0; start < end || shown == 0; shown++ {
		if shown == maxSnippetLines {
			fmt.Fprintf(w, "      … (%d more lines)\n", bytes.Count(src[start:end], []byte{'\n'})+1)
			break
		}
		stop := len(src)
		if i := bytes.IndexByte(src[start:], '\n'); i >= 0 {
			stop = start + i
		}
		text := func(a, b int) string {
			a, b = min(max(a, start), stop), min(max(b, start), stop)
			if a >= b {
				return ""
			}
			return echo.Text(strings.TrimSuffix(string(src[a:b]), "\r"))
		}
		before, in, after := text(start, hs), text(hs, he), text(he, stop)
		if in == "" {
			fmt.Fprintf(w, "%4d: %s%s\n", line, before, after)
		} else {
			fmt.Fprintf(w, "%4d: %s%s%s%s%s\n", line, before, highlightCode, in, resetCode, after)
		}
		if stop >= len(src) {
			break
		}
		start, line = stop+1, line+1
	}
	w.WriteByte('\n')
}

// maxMessage bounds a diagnostic's summary and detail. svcnat's own
// details quote values cut to echo.Max already; hcl's quote names from the
// source whole ("An argument named … is not expected here").
const maxMessage = 1024

// boundMessages cuts every diagnostic's summary and detail to maxMessage.
func boundMessages(diags hcl.Diagnostics) {
	for _, d := range diags {
		d.Summary = echo.TextAt(d.Summary, maxMessage)
		d.Detail = echo.TextAt(d.Detail, maxMessage)
	}
}

// DiagnosticsJSONVersion is the version of WriteDiagnosticsJSON's output.
const DiagnosticsJSONVersion = "1"

// jsonDiagnostics is the machine-readable form of a run's diagnostics,
// shaped like terraform validate -json, so that CI tools which annotate
// pull requests from it read svcnat's too.
type jsonDiagnostics struct {
	FormatVersion string           `json:"format_version"`
	Valid         bool             `json:"valid"`
	ErrorCount    int              `json:"error_count"`
	WarningCount  int              `json:"warning_count"`
	Diagnostics   []jsonDiagnostic `json:"diagnostics"`
}

type jsonDiagnostic struct {
	Severity string     `json:"severity"` // "error" or "warning"
	Summary  string     `json:"summary"`
	Detail   string     `json:"detail,omitempty"`
	Range    *jsonRange `json:"range,omitempty"` // absent when the problem has no place (an unreadable file)
}

type jsonRange struct {
	Filename string  `json:"filename"`
	Start    jsonPos `json:"start"`
	End      jsonPos `json:"end"`
}

type jsonPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// WriteDiagnosticsJSON writes diags as one JSON document: whether the
// configuration is valid, the counts, and each diagnostic's severity,
// summary, detail and source range (file, line and column where it starts
// and ends, 1-based, and byte offsets).
func WriteDiagnosticsJSON(w io.Writer, diags hcl.Diagnostics) error {
	out := jsonDiagnostics{FormatVersion: DiagnosticsJSONVersion, Diagnostics: []jsonDiagnostic{}}
	for _, d := range diags {
		jd := jsonDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
			out.WarningCount++
		} else {
			out.ErrorCount++
		}
		if r := d.Subject; r != nil {
			jd.Range = &jsonRange{Filename: r.Filename,
				Start: jsonPos{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
				End:   jsonPos{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte}}
		}
		out.Diagnostics = append(out.Diagnostics, jd)
	}
	out.Valid = out.ErrorCount == 0
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// DiagnosticLines renders diags one per line, "file:line:column: summary:
// detail", for logs, where a snippet has no place (svcnat reconcile).
func DiagnosticLines(diags hcl.Diagnostics) []string {
	out := make([]string, 0, len(diags))
	for _, d := range diags {
		s := d.Summary
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		if d.Subject != nil {
			s = pos(*d.Subject) + ": " + s
		}
		if d.Severity == hcl.DiagWarning {
			s = "warning: " + s
		}
		out = append(out, s)
	}
	return out
}
