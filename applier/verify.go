package applier

import (
	"strings"

	"github.com/svcnat/svcnat/planner"
)

// lineDiff lists the lines only in want (-) or only in got (+).
func lineDiff(want, got string) string {
	var b strings.Builder
	for _, d := range planner.RuleDiffText(want, got) {
		if d.Op != planner.DiffEqual {
			b.WriteString(string(d.Op) + " " + d.Text + "\n")
		}
	}
	return b.String()
}
