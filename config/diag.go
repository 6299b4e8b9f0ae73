package config

import (
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
