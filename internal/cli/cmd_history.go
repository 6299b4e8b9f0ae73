package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// HistoryJSONVersion is the version of `history --json` output; see
// README.md.
const HistoryJSONVersion = "1"

func historyCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "history",
		Usage: "list the generations the state directory keeps: what made each, its configuration, chains and rules, and which is current",
		Action: func(c *ucli.Context) error {
			g, err := readGlobals(c)
			if err != nil {
				return err
			}
			// The record alone: no rules are read, nothing is locked or
			// created, so it needs neither root nor the namespace.
			h, err := engine.ReadHistory(g.StateDir)
			if err != nil {
				return err
			}
			if g.JSON {
				return writeHistoryJSON(c.App.Writer, h)
			}
			writeHistory(c.App.Writer, newStyle(g.Color), h)
			return nil
		},
		Before: noArgs,
	}
}

// writeHistory lists the generations as a table, oldest first.
func writeHistory(w io.Writer, st style, h *engine.History) {
	if len(h.Generations) == 0 {
		fmt.Fprintf(w, "No generation recorded in %s.\n", h.StateDir)
		return
	}
	where := ""
	if h.Namespace != nil {
		where = fmt.Sprintf(" (%s)", namespaceWords(h.Namespace.Name))
	}
	fmt.Fprintf(w, "Generations kept in %s%s, oldest first:\n\n", h.StateDir, where)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  GEN\tRECORDED\tMADE BY\tCONFIG\tCHAINS\tRULES\t")
	for _, g := range h.Generations {
		mark := " "
		if g.Current {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s %d\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, g.Generation, g.AppliedAt.Format(historyTime),
			orDash(strings.ReplaceAll(g.MadeBy, "_", " ")), orDash(shortDigest(g.ConfigDigest)), count(g.Chains), count(g.Rules), historyNote(g))
	}
	tw.Flush()
	for _, line := range strings.SplitAfter(table.String(), "\n") {
		// A row without a note ends in its padding.
		if line != "" {
			fmt.Fprintln(w, strings.TrimRight(line, " \n"))
		}
	}
	fmt.Fprintf(w, "\n%s generation %d is current. svcnat rollback --to N returns to a kept generation.\n", st.bold("*"), h.Current)
}

// historyTime is how history and rollback print when a generation was
// recorded.
const historyTime = "2006-01-02 15:04:05 MST"

// historyNote says what else the record tells of a generation: that it
// was reverted, and why, or which one it reverted, how many chains it
// adopted, and the backend a migration moved the rules from.
func historyNote(g engine.Generation) string {
	var notes []string
	if g.RevertOf != 0 {
		notes = append(notes, fmt.Sprintf("reverts %d", g.RevertOf))
	}
	if g.Reverted != "" {
		notes = append(notes, "reverted: "+g.Reverted)
	}
	if g.Adopted > 0 {
		notes = append(notes, "adopted "+plural(g.Adopted, "chain"))
	}
	if g.MigratedFrom != "" {
		notes = append(notes, fmt.Sprintf("moved from %s to %s", g.MigratedFrom, g.Backend))
	}
	return strings.Join(notes, "; ")
}

// shortDigest is a digest as people compare them: its first 12 hex digits.
func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func count(n int) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// namespaceWords names a network namespace in a sentence, as the
// engine's errors do: "" is one ip netns does not name.
func namespaceWords(name string) string {
	if name == "" {
		return "the network namespace svcnat runs in"
	}
	return "network namespace " + name
}

// jsonHistory is the documented machine-readable history (README
// "History").
type jsonHistory struct {
	FormatVersion string              `json:"format_version"`
	StateDir      string              `json:"state_dir"`
	Namespace     *string             `json:"namespace"`
	Current       int64               `json:"current"`
	Generations   []jsonHistoryRecord `json:"generations"`
}

type jsonHistoryRecord struct {
	Generation   int64        `json:"generation"`
	RecordedAt   time.Time    `json:"recorded_at"`
	MadeBy       *string      `json:"made_by"`
	ConfigDigest *string      `json:"config_digest"`
	RulesDigest  *string      `json:"rules_digest"`
	Backend      backend.Name `json:"backend"`
	Chains       *int         `json:"chains"`
	Rules        *int         `json:"rules"`
	Current      bool         `json:"current"`
	Reverted     *string      `json:"reverted"`
	RevertOf     *int64       `json:"revert_of"`
	Adopted      int          `json:"adopted"`
	MigratedFrom *string      `json:"migrated_from"`
}

func writeHistoryJSON(w io.Writer, h *engine.History) error {
	out := jsonHistory{FormatVersion: HistoryJSONVersion, StateDir: h.StateDir, Current: h.Current, Generations: []jsonHistoryRecord{}}
	if h.Namespace != nil {
		out.Namespace = &h.Namespace.Name
	}
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	num := func(n int) *int {
		if n < 0 {
			return nil
		}
		return &n
	}
	for _, g := range h.Generations {
		r := jsonHistoryRecord{Generation: g.Generation, RecordedAt: g.AppliedAt, MadeBy: str(g.MadeBy),
			ConfigDigest: str(g.ConfigDigest), RulesDigest: str(g.RulesDigest), Backend: g.Backend,
			Chains: num(g.Chains), Rules: num(g.Rules), Current: g.Current, Reverted: str(g.Reverted), Adopted: g.Adopted,
			MigratedFrom: str(string(g.MigratedFrom))}
		if g.RevertOf != 0 {
			of := g.RevertOf
			r.RevertOf = &of
		}
		out.Generations = append(out.Generations, r)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("writing the history: %w", err)
	}
	return nil
}
