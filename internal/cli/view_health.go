package cli

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/planner"
)

// svcnat reconcile's health view in the one-shot commands' output: plan
// says which endpoints the checks took out (short: one line, the first
// few by name), plan --json all of them with what the checks found; show
// lists every checked endpoint, or says once that the view is stale.

// jsonPlanHealth is plan --json's health (planner.Health): the endpoints
// reconcile's health checks found down, which the plan leaves out as the
// daemon does; null when the plan read no fresh view.
type jsonPlanHealth struct {
	File       string     `json:"file"`
	WrittenAt  *time.Time `json:"written_at"`
	AgeSeconds float64    `json:"age_seconds"`
	PID        int        `json:"pid"`
	// Error is why the view was ignored (unreadable): the plan renders
	// the configuration's conditions alone.
	Error *string        `json:"error"`
	Down  []jsonDownHere `json:"down"`

	age time.Duration // AgeSeconds, for a person
}

// jsonDownHere is an endpoint a health check took out of the plan.
type jsonDownHere struct {
	Service     string     `json:"service"`
	Endpoint    netip.Addr `json:"endpoint"`
	Target      string     `json:"target"`
	Since       time.Time  `json:"since"`
	Consecutive int        `json:"consecutive"`
	LastCheck   *time.Time `json:"last_check"`
	LastError   string     `json:"last_error"`
}

func newJSONPlanHealth(h *planner.Health) *jsonPlanHealth {
	if h == nil {
		return nil
	}
	out := &jsonPlanHealth{File: h.File, PID: h.PID, Down: []jsonDownHere{}}
	if h.Ignored != "" {
		out.Error = &h.Ignored
		return out
	}
	out.age = max(h.ReadAt.Sub(h.WrittenAt), 0)
	out.WrittenAt, out.AgeSeconds = timeOrNull(h.WrittenAt), seconds(out.age)
	for _, d := range h.Down {
		out.Down = append(out.Down, jsonDownHere{Service: d.Service, Endpoint: d.Endpoint, Target: d.Target, Since: d.Since,
			Consecutive: d.Consecutive, LastCheck: timeOrNull(d.LastCheck), LastError: d.LastError})
	}
	return out
}

// writePlanHealth says, after a plan, which endpoints it leaves out
// because reconcile's checks found them down, or that it ignored a view
// it could not read.
func writePlanHealth(w io.Writer, st style, h *jsonPlanHealth) {
	switch {
	case h == nil:
	case h.Error != nil:
		fmt.Fprintf(w, "\n%s ignored svcnat reconcile's health view (%s): this plan renders the configuration's conditions alone.\n",
			st.bold("Health:"), *h.Error)
	case len(h.Down) > 0:
		names := make([]string, 0, min(len(h.Down), leftShown+1))
		for i, d := range h.Down {
			if i == leftShown {
				names = append(names, fmt.Sprintf("and %d more", len(h.Down)-leftShown))
				break
			}
			names = append(names, d.Service+" "+d.Endpoint.String())
		}
		fmt.Fprintf(w, "\n%s %s left out: down by health check (svcnat reconcile, %s): %s.\n",
			st.bold("Health:"), plural(len(h.Down), "endpoint"), ago(h.age), strings.Join(names, ", "))
	}
}

// jsonShowHealth is show --json's health (engine.HealthStatus): each
// endpoint reconcile checks, up or down; null when the state directory
// holds no view. A stale view (stale true) lists none.
type jsonShowHealth struct {
	File       string     `json:"file"`
	WrittenAt  *time.Time `json:"written_at"`
	AgeSeconds float64    `json:"age_seconds"`
	PID        int        `json:"pid"`
	Stale      bool       `json:"stale"`
	// StaleReason is writer_gone (the reconcile that wrote it is gone)
	// or too_old (older than the view's own stale_after: its writer
	// stopped renewing it); null when fresh.
	StaleReason *string          `json:"stale_reason"`
	Error       *string          `json:"error"`
	Endpoints   []jsonHealthHere `json:"endpoints"`

	age time.Duration // AgeSeconds, for a person
}

// jsonHealthHere is one checked endpoint (health.Status).
type jsonHealthHere struct {
	Service      string     `json:"service"`
	Endpoint     netip.Addr `json:"endpoint"`
	Target       string     `json:"target"`
	Up           bool       `json:"up"`
	Checked      bool       `json:"checked"`
	Since        time.Time  `json:"since"`
	SinceSeconds float64    `json:"since_seconds"`
	Consecutive  int        `json:"consecutive"`
	LastCheck    *time.Time `json:"last_check"`
	LastError    string     `json:"last_error"`

	since time.Duration // SinceSeconds, for a person
}

func newJSONShowHealth(hs *engine.HealthStatus) *jsonShowHealth {
	if hs == nil {
		return nil
	}
	out := &jsonShowHealth{File: hs.File, Stale: hs.Stale, Endpoints: []jsonHealthHere{}}
	if hs.Err != nil {
		msg := hs.Err.Error()
		out.Error = &msg
		return out
	}
	v := hs.View
	out.age = max(hs.ReadAt.Sub(v.WrittenAt), 0)
	out.WrittenAt, out.AgeSeconds, out.PID = timeOrNull(v.WrittenAt), seconds(out.age), v.PID
	if hs.Stale {
		why := "too_old"
		if hs.Gone {
			why = "writer_gone"
		}
		out.StaleReason = &why
		return out
	}
	for _, k := range healthKeys(v) {
		s := v.Endpoints[k]
		since := max(hs.ReadAt.Sub(s.Since), 0)
		out.Endpoints = append(out.Endpoints, jsonHealthHere{Service: k.Service, Endpoint: k.Endpoint, Target: s.Target, Up: s.Up,
			Checked: s.Checked, Since: s.Since.UTC(), SinceSeconds: seconds(since), Consecutive: s.Consecutive,
			LastCheck: timeOrNull(s.LastCheck), LastError: s.LastError, since: since})
	}
	return out
}

// healthKeys are v's endpoints by service and address.
func healthKeys(v *health.View) []health.Key {
	keys := make([]health.Key, 0, len(v.Endpoints))
	for k := range v.Endpoints {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b health.Key) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), a.Endpoint.Compare(b.Endpoint))
	})
	return keys
}

// writeShowHealth is show's part of the health view: each checked
// endpoint, up or down, since when, and what its last checks found; or,
// once, why there is none to show. Nothing when the state directory holds
// no view, or the view checks no endpoint.
func writeShowHealth(w io.Writer, st style, h *jsonShowHealth) {
	switch {
	case h == nil:
	case h.Error != nil:
		fmt.Fprintf(w, "\nThe health view of svcnat reconcile cannot be read (%s): no health to show.\n", *h.Error)
	case h.Stale:
		written := "never"
		if h.WrittenAt != nil {
			written = h.WrittenAt.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "\nThe health view in %s is stale (written at %s, %s, by pid %d, %s): no health to show.\n",
			h.File, written, ago(h.age), h.PID, staleWhy(h))
	case len(h.Endpoints) > 0:
		fmt.Fprintf(w, "\n%s\n", st.bold(fmt.Sprintf("health checks (svcnat reconcile pid %d, %s)", h.PID, ago(h.age))))
		for _, e := range h.Endpoints {
			fmt.Fprintf(w, "  %s %s %s\n", e.Service, e.Endpoint, endpointHealth(e))
		}
	}
}

// staleWhy is the end of show's line about a stale view.
func staleWhy(h *jsonShowHealth) string {
	if *h.StaleReason == "writer_gone" {
		return "which is gone"
	}
	return "which has not renewed it in time"
}

// endpointHealth says what the checks found of one endpoint: "down since
// 45s ago, 3 failures in a row: dial tcp …: connection refused".
func endpointHealth(e jsonHealthHere) string {
	s := "up"
	if !e.Up {
		s = "down"
	}
	if e.Checked {
		s += " since " + ago(e.since)
	} else {
		s += " (no verdict yet)"
	}
	switch {
	case e.LastCheck == nil:
		return s + ", not checked yet"
	case e.LastError != "":
		return fmt.Sprintf("%s, %s in a row: %s", s, plural(e.Consecutive, "failure"), printable(e.LastError))
	case e.Consecutive == 1:
		return s + ", 1 pass"
	}
	return fmt.Sprintf("%s, %d passes in a row", s, e.Consecutive)
}

// printable is s for a terminal: quoted when it holds a character that is
// not printable. A check's error can carry what the endpoint answered (an
// HTTP reason phrase), which must not drive the operator's terminal.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// ago says how long ago something was, to the second: "3s ago".
func ago(d time.Duration) string { return d.Round(time.Second).String() + " ago" }

func seconds(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

// timeOrNull is t for JSON, null when it is zero (never).
func timeOrNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
