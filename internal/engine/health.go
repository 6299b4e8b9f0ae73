package engine

import (
	"cmp"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// The one-shot commands agree with the daemon: beside a live svcnat
// reconcile, plan, apply and the migration render the configuration with
// the endpoints its health checks found down taken out, as reconcile
// renders it, and show reports each checked endpoint. A view that no
// longer speaks for a live reconcile (health.View.Stale) is ignored: the
// file's conditions alone decide, as they do without a reconcile.

// healthOverlay returns cfg as the rules in force render it: the
// endpoints the health view finds down taken out (health.Overlay); and
// the plan's note of it, nil when no view was read. A view that cannot be
// read is ignored and the note says why: a corrupt health.json must not
// block an operator's apply, and the file's conditions alone are what
// svcnat renders without a reconcile.
func (e *Engine) healthOverlay(cfg *config.Config) (*config.Config, *planner.Health) {
	now := time.Now().UTC()
	v, note := e.healthView(now)
	if v == nil {
		return cfg, note
	}
	out := health.Overlay(cfg, v)
	note.Down = tookOut(cfg, out, v)
	return out, note
}

// healthView is the view plans render with, at now: the state
// directory's while fresh. The daemon's plans take none: reconcile gives
// the engine its configuration with its own view laid over it already,
// and the file it writes can lag behind its memory (a failed write). A
// plan against a saved dump takes none either: the dump is another
// host's rules, which this host's checks say nothing of.
func (e *Engine) healthView(now time.Time) (*health.View, *planner.Health) {
	if e.Origin == OriginReconcile || e.Kernel.ReadOnly() || e.StateDir == "" {
		return nil, nil
	}
	file := filepath.Join(e.StateDir, health.FileName)
	v, err := ReadHealth(e.StateDir)
	switch {
	case err != nil:
		return nil, &planner.Health{File: file, ReadAt: now, Ignored: err.Error()}
	case v == nil || v.Stale(now):
		return nil, nil
	}
	return v, &planner.Health{File: file, WrittenAt: v.WrittenAt.UTC(), ReadAt: now, PID: v.PID}
}

// ReadHealth reads the state directory's health view, stale or not, as
// every file of it is read (a trusted directory, no link followed); nil
// when there is none. It creates no state directory. It is the one
// reader of the view: the one-shot commands, show and a starting
// reconcile (its predecessor's view) go through it.
func ReadHealth(stateDir string) (*health.View, error) {
	if !state.Exists(stateDir) {
		return nil, nil
	}
	d, err := state.Open(stateDir)
	if err != nil {
		return nil, err
	}
	data, err := d.ReadFile(health.FileName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return health.Decode(data, filepath.Join(stateDir, health.FileName))
}

// tookOut lists the endpoints that overlaid (health.Overlay(cfg, v))
// took out of cfg: ready or serving in the file, neither in overlaid; by
// service and address.
func tookOut(cfg, overlaid *config.Config, v *health.View) []planner.Down {
	var out []planner.Down
	for i, s := range cfg.Services {
		o := overlaid.Services[i]
		if o == s {
			continue
		}
		for j, ep := range s.Endpoints {
			if oe := o.Endpoints[j]; !(ep.Ready || ep.Serving) || oe.Ready || oe.Serving {
				continue
			}
			st := v.Endpoints[health.Key{Service: s.Name, Endpoint: ep.Address}]
			out = append(out, planner.Down{Service: s.Name, Endpoint: ep.Address, Since: st.Since.UTC(), Consecutive: st.Consecutive,
				LastCheck: st.LastCheck.UTC(), LastError: st.LastError, Target: st.Target})
		}
	}
	slices.SortFunc(out, func(a, b planner.Down) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), a.Endpoint.Compare(b.Endpoint))
	})
	return out
}

// HealthStatus is svcnat reconcile's health view as show reports it.
type HealthStatus struct {
	// File is the view's file; ReadAt when show read it.
	File   string
	ReadAt time.Time
	// View is the view as read, stale or not; nil when it could not be
	// read (Err).
	View *health.View
	Err  error
	// Stale: the view no longer speaks for a live reconcile, and show
	// gives no health from it: its writer is Gone, or it is older than
	// its StaleAfter.
	Stale, Gone bool
}

// healthStatus reads the state directory's health view for show; nil
// when there is none.
func (e *Engine) healthStatus() *HealthStatus {
	now := time.Now()
	v, err := ReadHealth(e.StateDir)
	if v == nil && err == nil {
		return nil
	}
	hs := &HealthStatus{File: filepath.Join(e.StateDir, health.FileName), ReadAt: now, View: v, Err: err}
	if v != nil {
		hs.Stale, hs.Gone = v.Stale(now), v.WriterGone()
	}
	return hs
}
