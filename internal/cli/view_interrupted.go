package cli

import (
	"fmt"
	"io"

	"github.com/svcnat/svcnat/internal/planner"
)

// leftShown is how many chains left by an interrupted apply a person is
// shown by name; a killed cold start leaves thousands.
const leftShown = 10

// writeInterrupted names the chains an interrupted apply left, for plan
// (what says what the plan does to them) and show.
func writeInterrupted(w io.Writer, st style, left []planner.Left, what string) {
	if len(left) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s %s left by an interrupted apply (killed while it created chains): nothing references them, and no recorded generation has them; %s:\n",
		st.bold("Interrupted:"), plural(len(left), "chain"), what)
	for i, l := range left {
		if i == leftShown {
			fmt.Fprintf(w, "  %s\n", st.dim(fmt.Sprintf("... and %d more", len(left)-leftShown)))
			break
		}
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// jsonLeft is a chain left by an interrupted apply in plan --json.
type jsonLeft struct {
	Family jsonFamily `json:"family"`
	Table  string     `json:"table"`
	Chain  string     `json:"chain"`
}

func jsonInterrupted(left []planner.Left) []jsonLeft {
	out := []jsonLeft{}
	for _, l := range left {
		out = append(out, jsonLeft{Family: newJSONFamily(l.Family), Table: l.Table, Chain: l.Chain})
	}
	return out
}
