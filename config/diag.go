package config

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/hashicorp/hcl/v2"
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

// WriteDiagnostics writes diags as text with hcl's own writer: severity and
// summary, the source snippet with the offending range highlighted (when
// color is on), and the detail wrapped at width (0: no wrapping). files
// gives the sources for the snippets; pass Config.Files, which Load and
// Parse fill even when they fail. Each summary is prefixed with
// file:line:column, which hcl's writer does not print on its own.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, color bool, width uint) error {
	tw := hcl.NewDiagnosticTextWriter(w, files, width, color)
	for _, d := range diags {
		c := *d
		if d.Subject != nil {
			c.Summary = pos(*d.Subject) + ": " + d.Summary
		}
		if err := tw.WriteDiagnostic(&c); err != nil {
			return err
		}
	}
	return nil
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
