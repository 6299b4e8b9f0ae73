package applier

import (
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
)

// ruleDiff lists the rules only in want (-) or only in got (+), by the
// planner's own rule diff.
func ruleDiff(want, got []backend.Rule) string { return changedLines(planner.RuleDiff(want, got)) }

func changedLines(ds []backend.DiffLine) string {
	var b strings.Builder
	for _, d := range ds {
		if d.Op != backend.DiffEqual {
			b.WriteString(string(d.Op) + " " + d.Text + "\n")
		}
	}
	return b.String()
}
