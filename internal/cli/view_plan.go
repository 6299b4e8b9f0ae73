package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
)

// PlanJSONVersion is the version of `plan --json` output; see README.md.
// 2: blocked holds objects (version 1: sentences), and every change has
// its service (null for a shared chain) and scope.
const PlanJSONVersion = "2"

// planView renders a plan for a person or for a program. Views decide
// nothing: they print what the plan holds, in words they choose. A failed
// write is their error: a plan that did not arrive was not shown.
type planView interface {
	Plan(p *planner.Plan) error
	// PlanRefused is Plan with what apply would make of p: refusal is
	// engine.ApplyRefusal's (or Planned.Refusal), nil when apply takes it.
	PlanRefused(p *planner.Plan, refusal error) error
}

func newPlanView(w io.Writer, json, color bool) planView {
	return newOpPlanView(w, engine.OpApply, json, color)
}

// newOpPlanView is newPlanView for the plan of op (apply, destroy,
// rollback, revert): a person is told which command would refuse it.
func newOpPlanView(w io.Writer, op engine.Op, json, color bool) planView {
	if json {
		return &planJSON{w: w}
	}
	return &planHuman{w: w, style: newStyle(color), op: op, intro: "svcnat will perform the following actions", total: "Plan:"}
}

// newChangesView prints a plan as a record of what changed (drift, a
// stale plan) rather than as what svcnat will do.
func newChangesView(w io.Writer, color bool, intro string) planView {
	return &planHuman{w: w, style: newStyle(color), intro: intro, total: "Changed:"}
}

type planHuman struct {
	w     io.Writer
	style style
	op    engine.Op // the command whose plan it is, which may refuse it
	intro string
	total string // the label of the last line
	// nothing, when set, replaces what nothingToDo says after "No
	// changes." (a rollback names the generation the live rules are).
	nothing string
}

func (v *planHuman) Plan(p *planner.Plan) error { return v.PlanRefused(p, nil) }

// removal makes v the view of a migration's second plan, the removal of
// svcnat's set from the backend from, which follows the first.
func (v *planHuman) removal(from backend.Name) {
	v.intro = "Then svcnat will remove its rules from the backend it moves them from"
	v.nothing = fmt.Sprintf("The %s backend holds none of svcnat's rules.", from)
}

// writeMigrationPlan is plan's preview of a migration: p, the
// configuration's plan on the backend --backend names (refused by apply
// with refusal, nil if not: the removal's refusal refuses it too), then
// the removal of svcnat's set from the backend holding it, as apply
// --backend shows them before it asks. With
// --json it is one plan document whose migrated_from_plan is the
// removal's.
func writeMigrationPlan(w io.Writer, g Globals, p *planner.Plan, refusal error, removal *planner.Plan, removalRefusal error) error {
	if g.JSON {
		doc, r := newJSONPlan(p, refusal), newJSONPlan(removal, removalRefusal)
		doc.MigratedFromPlan = &r
		bw := bufio.NewWriterSize(w, 1<<16)
		err := writeJSON(bw, "", doc)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return fmt.Errorf("writing the plan: %w", err)
		}
		return nil
	}
	if err := newOpPlanView(w, engine.OpApply, false, g.Color).PlanRefused(p, refusal); err != nil {
		return err
	}
	fmt.Fprintln(w)
	v := newOpPlanView(w, engine.OpApply, false, g.Color).(*planHuman)
	v.removal(removal.Backend)
	if err := v.PlanRefused(removal, removalRefusal); err != nil {
		return err
	}
	if refusal == nil && removalRefusal == nil {
		fmt.Fprintf(w, "\nsvcnat apply --backend %s performs both in one step: the %s set first, committed and verified, then the removal.\n", p.Backend, p.Backend)
	}
	return nil
}

func (v *planHuman) PlanRefused(p *planner.Plan, refusal error) error {
	// A cold start prints a quarter of a million rule lines: one write
	// each would cost more than making the plan. The buffer keeps the
	// first write error, which Flush returns.
	w := bufio.NewWriterSize(v.w, 1<<16)
	v.write(w, newJSONPlan(p, refusal))
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing the plan: %w", err)
	}
	return nil
}

// write renders the described plan, the form plan --json prints, for a
// person: the two cannot disagree.
func (v *planHuman) write(w io.Writer, p jsonPlan) {
	st := v.style
	// A plan the command would refuse must not read as one it would
	// carry out, nor an empty one as all being well: the error after it
	// (plan's, or the command's own) says why. A plan against a dump is
	// no refusal here: its note says what it is for.
	refused := p.Refusal != nil
	if !p.Changed {
		if refused {
			fmt.Fprintf(w, "%s to the rules, but svcnat %s would refuse to run here (see the error below).\n", st.bold("No changes"), v.op)
			return
		}
		fmt.Fprintln(w, st.bold("No changes.")+" "+v.nothingToDo(p))
		if p.dump {
			writeDumpNote(w, st)
		}
		writeAdopting(w, st, lefts(p.Adopting))
		writePlanHealth(w, st, p.Health)
		return
	}
	intro := v.intro
	if refused {
		intro = fmt.Sprintf("svcnat %s would refuse this plan (see the error below); it would perform the following actions", v.op)
	}
	fmt.Fprintf(w, "%s (backend %s, %s):\n\n", intro, p.Backend, ownedWhat(p.Backend, p.Prefix))
	for _, s := range p.Services {
		line := fmt.Sprintf("  %s service %s", st.glyph(s.Action.action()), s.Name)
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
		if h := fmt.Sprintf("%s %s table:", c.Family.family(), c.Table); h != cur {
			cur = h
			fmt.Fprintln(w, st.bold(h))
		}
		kind := "chain"
		if c.Kind != "" {
			kind = c.Kind
		}
		head := fmt.Sprintf("  %s %s %s", st.glyph(c.Action.action()), kind, c.Chain)
		switch {
		case c.Builtin:
			head += " (svcnat's jump rules only)"
		case c.Service != nil:
			head += " (" + *c.Service + ")"
		}
		fmt.Fprintln(w, head)
		if c.DeclarationBefore != "" {
			fmt.Fprintln(w, "      "+st.color(backend.Delete, "- { "+c.DeclarationBefore+" }"))
		}
		if c.DeclarationAfter != "" {
			fmt.Fprintln(w, "      "+st.color(backend.Create, "+ { "+c.DeclarationAfter+" }"))
		}
		hidden := 0
		for op, r := range (backend.ChainChange{Before: c.Before, After: c.After, Diff: c.diff}).Lines() {
			switch op {
			case backend.DiffEqual:
				hidden++
			case backend.DiffInsert:
				fmt.Fprintln(w, "      "+st.color(backend.Create, "+ "+r.String()))
			case backend.DiffDelete:
				fmt.Fprintln(w, "      "+st.color(backend.Delete, "- "+r.String()))
			}
		}
		if hidden > 0 {
			unchanged := "unchanged rule"
			if c.Kind == "set" || c.Kind == "map" {
				unchanged = "unchanged element"
			}
			fmt.Fprintf(w, "      %s\n", st.dim(fmt.Sprintf("(%s hidden)", plural(hidden, unchanged))))
		}
	}
	if len(p.Blocked) > 0 {
		fmt.Fprintf(w, "\n%s svcnat %s will refuse this plan: rules svcnat does not own jump into chains it deletes, and svcnat never edits them:\n",
			st.color(backend.Delete, "Blocked:"), v.op)
		for _, b := range p.Blocked {
			fmt.Fprintln(w, "  "+st.color(backend.Delete, b.blocked().String()))
		}
	}
	writeInterrupted(w, st, lefts(p.Interrupted), "this plan uses those the configuration wants and removes the rest")
	writeAdopting(w, st, lefts(p.Adopting))
	writePlanHealth(w, st, p.Health)
	s := p.Summary
	objects, rules := plural(s.Add, objectWord(p.Backend)), plural(s.RulesAdded, "rule")
	if p.Backend == kernel.NFTables {
		rules = fmt.Sprintf("%d rules and elements", s.RulesAdded)
	}
	fmt.Fprintf(w, "\n%s %s to add, %d to change, %d to remove (%s added, %d removed).\n",
		st.bold(v.total), objects, s.Change, s.Remove, rules, s.RulesRemoved)
	if p.dump {
		writeDumpNote(w, st)
	}
}

// objectWord is what the plans of backend name count: chains, or on
// nftables objects (chains, sets and maps).
func objectWord(name backend.Name) string {
	if name == kernel.NFTables {
		return "object"
	}
	return "chain"
}

// ownedWhat says what svcnat owns on backend name, for the plan's first
// line: "chains SVCNAT-*", or on nftables "table svcnat".
func ownedWhat(name backend.Name, prefix string) string {
	if name == kernel.NFTables {
		return "table " + backend.NFTTable(prefix)
	}
	return "chains " + prefix + "-*"
}

// nothingToDo says, after "No changes.", why an empty plan is all there
// is: the rules (live, or in a dump) are what the configuration wants,
// or, for destroy (a saved destroy plan shown too), which has no
// configuration, none of the prefix's are there.
func (v *planHuman) nothingToDo(p jsonPlan) string {
	destroy, dump := v.op == engine.OpDestroy || p.destroy, p.dump
	switch {
	case v.nothing != "":
		return v.nothing
	case destroy && dump:
		return "Nothing to destroy: no " + p.Prefix + "-* chains or jumps are in the dump."
	case destroy && p.Backend == kernel.NFTables:
		return "Nothing to destroy: svcnat's table " + backend.NFTTable(p.Prefix) + " holds nothing live."
	case destroy:
		return "Nothing to destroy: no " + p.Prefix + "-* chains or jumps are live."
	case dump:
		return "The rules in the dump match the configuration."
	}
	return "The live rules match the configuration."
}

// writeDumpNote ends a plan made against a saved dump, with changes or
// without: as terraform says of a plan it cannot guarantee, planning
// against a dump is for review (CI), not for apply.
func writeDumpNote(w io.Writer, st style) {
	fmt.Fprintf(w, "\n%s this plan was made against a saved iptables-save dump, not this host's live rules: svcnat apply cannot commit it.\n",
		st.bold("Note:"))
}

// detailWords says what changes for a service, in an operator's words:
// "endpoint 10.64.1.4:8080 added", "cluster IP 10.32.0.1:80/tcp removed".
func detailWords(ds []backend.Detail) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		var what string
		switch d.Subject {
		case backend.SubjectEndpoint:
			what = "endpoint " + d.Value
		case backend.SubjectClusterIP:
			what = "cluster IP " + d.Value
		case backend.SubjectExternalIP:
			what = "external IP " + d.Value
		case backend.SubjectLoadBalancerIP:
			what = "load-balancer IP " + d.Value
		case backend.SubjectNodePort:
			what = "node port " + d.Value
		case backend.SubjectHealthCheckNodePort:
			what = "health check node port " + d.Value
		case backend.SubjectNoEndpointsReject:
			what = "no-endpoints REJECT"
		case backend.SubjectNoLocalEndpointsDrop:
			what = "no-local-endpoints DROP"
		case backend.SubjectSourceRanges:
			what = "load-balancer source ranges"
		case backend.SubjectChain:
			what = chainKindWords[d.Value]
		default:
			what = "rules of " + d.Value
		}
		switch d.Change {
		case backend.DetailAdded:
			what += " added"
		case backend.DetailRemoved:
			what += " removed"
		default:
			what += " changed"
		}
		out = append(out, what)
	}
	return out
}

// chainKindWords names the per-service chains by their role.
var chainKindWords = map[string]string{
	"SVC": "cluster chain",
	"SVL": "local-endpoints chain",
	"EXT": "external-traffic chain",
	"FW":  "load-balancer firewall chain",
}

type planJSON struct{ w io.Writer }

// jsonPlan is the described plan: the documented machine-readable plan
// (README "plan --json"), which the human view renders too, as Terraform
// renders its human output from its JSON form. The few things a person is
// told that a program is not are unexported fields, which encoding/json
// leaves out.
type jsonPlan struct {
	FormatVersion string        `json:"format_version"`
	Prefix        string        `json:"prefix"`
	Backend       backend.Name  `json:"backend"`
	Fingerprint   string        `json:"fingerprint"`
	Changed       bool          `json:"changed"`
	Blocked       []jsonBlocked `json:"blocked"`
	Applyable     bool          `json:"applyable"`
	Refusal       *jsonRefusal  `json:"refusal"`
	Interrupted   []jsonLeft    `json:"interrupted"`
	Adopting      []jsonLeft    `json:"adopting"`
	// Health is what reconcile's health checks took out of the plan.
	Health   *jsonPlanHealth `json:"health"`
	Summary  jsonSummary     `json:"summary"`
	Services []jsonService   `json:"services"`
	Changes  []jsonChange    `json:"changes"`
	// MigratedFromPlan is, only when --backend names another backend than
	// the one holding svcnat's rules, the removal of svcnat's set there
	// that apply --backend performs after this plan.
	MigratedFromPlan *jsonPlan `json:"migrated_from_plan,omitempty"`

	dump    bool // made against a saved dump (its note)
	destroy bool // a plan -destroy (what "No changes." says)
}

// jsonRefusal is why svcnat apply would refuse the plan on this host.
type jsonRefusal struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

type jsonSummary struct {
	Add          int `json:"add"`
	Change       int `json:"change"`
	Remove       int `json:"remove"`
	RulesAdded   int `json:"rules_added"`
	RulesRemoved int `json:"rules_removed"`
}

type jsonService struct {
	Name    string     `json:"name"`
	Action  jsonAction `json:"action"`
	Details []string   `json:"details"`
}

// jsonBlocked is a foreign rule that pins a chain the plan deletes
// (planner.Blocked): rule, in iptables-save form, is in chain, and jumps
// to pins.
type jsonBlocked struct {
	Family jsonFamily   `json:"family"`
	Table  string       `json:"table"`
	Chain  string       `json:"chain"`
	Rule   jsonRuleText `json:"rule"`
	Pins   string       `json:"pins"`
}

func (b jsonBlocked) blocked() planner.Blocked {
	return planner.Blocked{Family: b.Family.family(), Table: b.Table, Rule: backend.Rule(b.Rule), Pins: b.Pins}
}

// jsonChange is one changed chain. Service is the service it serves, null
// when Scope is not "service" (backend.Scope): a shared or built-in chain,
// or one whose service cannot be told.
type jsonChange struct {
	Family  jsonFamily    `json:"family"`
	Table   string        `json:"table"`
	Chain   string        `json:"chain"`
	Action  jsonAction    `json:"action"`
	Builtin bool          `json:"builtin"`
	Service *string       `json:"service"`
	Scope   string        `json:"scope"`
	Before  jsonRuleLines `json:"before"`
	After   jsonRuleLines `json:"after"`
	// Kind is, on nftables, what the object is: chain, set or map
	// (whose before and after are its elements); DeclarationBefore and
	// After its declarations, where they are not the same.
	Kind              string `json:"kind,omitempty"`
	DeclarationBefore string `json:"declaration_before,omitempty"`
	DeclarationAfter  string `json:"declaration_after,omitempty"`

	diff []backend.DiffRun // the plan's diff of Before and After, for a person
}

// jsonFamily is a family as plan --json names it: "ipv4".
type jsonFamily string

func newJSONFamily(f backend.Family) jsonFamily { return jsonFamily(f.Key()) }

// family is the family f names (0 for none).
func (f jsonFamily) family() backend.Family {
	fam, _ := backend.ParseFamily(string(f))
	return fam
}

// jsonAction is an action as plan --json names it: "create".
type jsonAction string

// action is the action a names (0 for none).
func (a jsonAction) action() backend.Action {
	for _, act := range []backend.Action{backend.Create, backend.Update, backend.Delete} {
		if act.String() == string(a) {
			return act
		}
	}
	return 0
}

// jsonRuleText is a rule in iptables-save form.
type jsonRuleText backend.Rule

func (r jsonRuleText) MarshalText() ([]byte, error) { return []byte(backend.Rule(r).String()), nil }

// jsonRuleLines are rules in iptables-save form, [] when none. They are
// made into text as they are written: a cold start's plan holds a quarter
// of a million.
type jsonRuleLines []backend.Rule

func (rs jsonRuleLines) MarshalJSON() ([]byte, error) {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return json.Marshal(out)
}

func (v *planJSON) Plan(p *planner.Plan) error { return v.PlanRefused(p, nil) }

func (v *planJSON) PlanRefused(p *planner.Plan, refusal error) error {
	w := bufio.NewWriterSize(v.w, 1<<16)
	err := writeJSON(w, "", newJSONPlan(p, refusal))
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return fmt.Errorf("writing the plan: %w", err)
	}
	return nil
}

// newJSONPlan is the described plan of p, which apply would refuse with
// refusal (nil: it would not): the plan --json document, and what the
// human view renders.
func newJSONPlan(p *planner.Plan, refusal error) jsonPlan {
	s, d := p.Summary(), kernel.Pure(p.Backend).Describe(p.Planned())
	out := jsonPlan{FormatVersion: PlanJSONVersion, Prefix: p.Prefix, Backend: p.Backend, Fingerprint: p.Fingerprint,
		Changed: !p.Empty(), Blocked: []jsonBlocked{}, Applyable: refusal == nil, Refusal: newJSONRefusal(refusal),
		Interrupted: jsonInterrupted(p.Interrupted), Adopting: jsonInterrupted(p.Adopting), Health: newJSONPlanHealth(p.Health),
		Summary: jsonSummary(s), Services: make([]jsonService, 0, len(d.Services)), Changes: make([]jsonChange, 0, len(p.Changes)),
		dump: errors.Is(refusal, backend.ErrReadOnly), destroy: p.Destroy}
	for _, b := range p.Blocked {
		out.Blocked = append(out.Blocked, jsonBlocked{Family: newJSONFamily(b.Family), Table: b.Table, Chain: b.Rule.Chain, Rule: jsonRuleText(b.Rule), Pins: b.Pins})
	}
	for _, sc := range d.Services {
		out.Services = append(out.Services, jsonService{Name: sc.Name, Action: jsonAction(sc.Action.String()), Details: detailWords(sc.Details)})
	}
	nft := p.Backend == kernel.NFTables
	for i, c := range p.Changes {
		owner := &d.Chains[i]
		jc := jsonChange{Family: newJSONFamily(c.Family), Table: c.Table, Chain: c.Chain, Action: jsonAction(c.Action.String()), Builtin: c.Builtin,
			Scope: string(owner.Scope), Before: c.Before, After: c.After, diff: c.Diff}
		if owner.Service != "" {
			jc.Service = &owner.Service
		}
		if nft {
			jc.Kind = c.Kind.String()
			if c.SpecBefore != c.SpecAfter {
				jc.DeclarationBefore, jc.DeclarationAfter = c.SpecBefore, c.SpecAfter
			}
		}
		out.Changes = append(out.Changes, jc)
	}
	return out
}

// writeJSON writes v as indented JSON, each line after the first
// starting with prefix: a document, or (prefix "  ") a member of one.
func writeJSON(w io.Writer, prefix string, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent(prefix, "  ")
	return enc.Encode(v)
}

// newJSONRefusal is the refusal field of plan --json: null when apply
// takes the plan, and for a plan against a dump, which is about another
// host (its applyable is false).
func newJSONRefusal(refusal error) *jsonRefusal {
	reason := refusalReason(refusal)
	if reason == "" {
		return nil
	}
	r := &jsonRefusal{Reason: reason, Message: refusal.Error()}
	if he := (*hintError)(nil); errors.As(hinted(refusal), &he) {
		r.Hint = he.hint
	}
	return r
}

// plural counts things in English: "1 chain", "2 chains".
func plural(n int, thing string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, thing)
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// lefts are the chains of a described plan's interrupted or adopting list.
func lefts(ls []jsonLeft) []planner.Left {
	out := make([]planner.Left, len(ls))
	for i, l := range ls {
		out[i] = planner.Left{Family: l.Family.family(), Table: l.Table, Chain: l.Chain}
	}
	return out
}

// writeAdopting names the live chains --adopt takes over (see
// writeInterrupted): no record of svcnat's has them, and the command
// treats them as its own (an apply records them so even when their rules
// stay as they are).
func writeAdopting(w io.Writer, st style, chains []planner.Left) {
	if len(chains) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s %s svcnat did not record (--adopt); this plan treats them as this state directory's:\n",
		st.bold("Adopting:"), plural(len(chains), "chain"))
	for i, l := range chains {
		if i == leftShown {
			fmt.Fprintf(w, "  %s\n", st.dim(fmt.Sprintf("... and %d more", len(chains)-leftShown)))
			break
		}
		fmt.Fprintf(w, "  %s\n", l)
	}
}
