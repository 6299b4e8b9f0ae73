package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/svcnat/svcnat/planner"
	"github.com/svcnat/svcnat/rules"
)

// PlanJSONVersion is the version of `plan --json` output; see README.md.
const PlanJSONVersion = "1"

// planView renders a plan for a person or for a program. Views decide
// nothing: they print what the plan holds.
type planView interface {
	Plan(p *planner.Plan) error
}

func newPlanView(w io.Writer, json, color bool) planView {
	if json {
		return &planJSON{w: w}
	}
	return &planHuman{w: w, style: newStyle(color), intro: "svcnat will perform the following actions", total: "Plan:"}
}

// newChangesView prints a plan as a record of what changed (drift, a
// stale plan) rather than as what svcnat will do.
func newChangesView(w io.Writer, color bool, intro string) planView {
	return &planHuman{w: w, style: newStyle(color), intro: intro, total: "Changed:"}
}

type planHuman struct {
	w     io.Writer
	style style
	intro string
	total string // the label of the last line
}

func (v *planHuman) Plan(p *planner.Plan) error {
	w, st := v.w, v.style
	if p.Empty() {
		fmt.Fprintln(w, st.bold("No changes.")+" The live rules match the configuration.")
		return nil
	}
	fmt.Fprintf(w, "%s (backend %s, chains %s-*):\n\n", v.intro, p.Backend, p.Prefix)
	for _, s := range p.Services {
		line := fmt.Sprintf("  %s service %s", st.glyph(s.Action), s.Name)
		if len(s.Details) > 0 {
			line += ": " + strings.Join(s.Details, ", ")
		}
		fmt.Fprintln(w, line)
	}
	if len(p.Services) > 0 {
		fmt.Fprintln(w)
	}
	var cur string
	for _, c := range p.Changes {
		if h := fmt.Sprintf("%s %s table:", c.Family, c.Table); h != cur {
			cur = h
			fmt.Fprintln(w, st.bold(h))
		}
		head := fmt.Sprintf("  %s chain %s", st.glyph(c.Action), c.Chain)
		switch {
		case c.Builtin:
			head += " (svcnat's jump rules only)"
		case c.Service != "":
			head += " (" + c.Service + ")"
		}
		fmt.Fprintln(w, head)
		hidden := 0
		for _, d := range c.Diff {
			switch d.Op {
			case planner.DiffEqual:
				hidden++
			case planner.DiffInsert:
				fmt.Fprintln(w, "      "+st.color(planner.Create, "+ "+d.Text))
			case planner.DiffDelete:
				fmt.Fprintln(w, "      "+st.color(planner.Delete, "- "+d.Text))
			}
		}
		if hidden > 0 {
			fmt.Fprintf(w, "      %s\n", st.dim(fmt.Sprintf("(%d unchanged rules hidden)", hidden)))
		}
	}
	s := p.Summary()
	fmt.Fprintf(w, "\n%s %s to add, %d to change, %d to remove (%s added, %d removed).\n",
		st.bold(v.total), plural(s.Add, "chain"), s.Change, s.Remove, plural(s.RulesAdded, "rule"), s.RulesRemoved)
	return nil
}

type planJSON struct{ w io.Writer }

// jsonPlan is the documented machine-readable plan (README "plan --json").
type jsonPlan struct {
	FormatVersion string        `json:"format_version"`
	Prefix        string        `json:"prefix"`
	Backend       string        `json:"backend"`
	Fingerprint   string        `json:"fingerprint"`
	Changed       bool          `json:"changed"`
	Blocked       []string      `json:"blocked"`
	Summary       jsonSummary   `json:"summary"`
	Services      []jsonService `json:"services"`
	Changes       []jsonChange  `json:"changes"`
}

type jsonSummary struct {
	Add          int `json:"add"`
	Change       int `json:"change"`
	Remove       int `json:"remove"`
	RulesAdded   int `json:"rules_added"`
	RulesRemoved int `json:"rules_removed"`
}

type jsonService struct {
	Name    string   `json:"name"`
	Action  string   `json:"action"`
	Details []string `json:"details"`
}

type jsonChange struct {
	Family  string   `json:"family"`
	Table   string   `json:"table"`
	Chain   string   `json:"chain"`
	Action  string   `json:"action"`
	Builtin bool     `json:"builtin"`
	Service string   `json:"service,omitempty"`
	Before  []string `json:"before"`
	After   []string `json:"after"`
}

func (v *planJSON) Plan(p *planner.Plan) error {
	s := p.Summary()
	out := jsonPlan{FormatVersion: PlanJSONVersion, Prefix: p.Prefix, Backend: p.Backend, Fingerprint: p.Fingerprint,
		Changed: !p.Empty(), Blocked: nonNil(p.Blocked), Summary: jsonSummary(s), Services: []jsonService{}, Changes: []jsonChange{}}
	for _, sc := range p.Services {
		out.Services = append(out.Services, jsonService{Name: sc.Name, Action: sc.Action.String(), Details: nonNil(sc.Details)})
	}
	for _, c := range p.Changes {
		out.Changes = append(out.Changes, jsonChange{Family: c.Family.Key(), Table: c.Table, Chain: c.Chain,
			Action: c.Action.String(), Builtin: c.Builtin, Service: c.Service, Before: lines(c.Before), After: lines(c.After)})
	}
	enc := json.NewEncoder(v.w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func lines(rs []rules.Rule) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// plural counts things in English: "1 chain", "2 chains".
func plural(n int, thing string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, thing)
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
