package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/daemon/metrics"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/planner"
)

// withHealth gives the checks the configuration loaded last, records
// their view in the state directory (for the one-shot commands and show)
// and returns the configuration with the endpoints they found down taken
// out: what the pass renders. Without checks it is the configuration.
func (l *Loop) withHealth(log *slog.Logger) *config.Config {
	if l.Checks == nil {
		return l.good
	}
	l.Checks.Sync(l.good)
	v := l.newView(l.Checks.View())
	l.recordView(log, v)
	l.view = v
	return health.Overlay(l.good, v)
}

// withView is cfg with the endpoints the last view has down taken out
// (cfg itself without checks; nil for nil).
func (l *Loop) withView(cfg *config.Config) *config.Config {
	if cfg == nil || l.view == nil {
		return cfg
	}
	return health.Overlay(cfg, l.view)
}

// newView is the view of the checks' findings, as of now.
func (l *Loop) newView(eps map[health.Key]health.Status) *health.View {
	return &health.View{
		WrittenAt: time.Now(),
		// Every pass writes it again, at least once an interval: stale
		// after what Serving allows, or at once when this process is gone.
		StaleAfter:   2*l.Interval + time.Minute,
		PID:          os.Getpid(),
		ConfigDigest: l.digest,
		Endpoints:    eps,
	}
}

// recordView writes v to the state directory, for the one-shot commands,
// and sets svcnat_endpoint_up from it.
func (l *Loop) recordView(log *slog.Logger, v *health.View) {
	if err := health.Write(l.Engine.StateDir, v); err != nil {
		// The rules still follow the checks; only the one-shot commands
		// will not know why endpoints are missing.
		log.Warn("recording the endpoints' health failed", "err", err)
	}
	l.count(func(m *metrics.Metrics) { m.EndpointHealth(v.Endpoints) })
}

// healthPass follows a verdict: with a session, it renders, writes and
// verifies only the services whose endpoints changed, then records the
// view; without one (or when the session cannot), it is a full pass.
func (l *Loop) healthPass(ctx context.Context) {
	if l.sess == nil || l.good == nil || l.Checks == nil {
		l.pass(ctx, "health")
		return
	}
	log := l.Log.With("event", "health")
	v := l.newView(l.Checks.View())
	changed := changedServices(l.inForceDown, v.Endpoints)
	if len(changed) == 0 {
		return // it went down and up again before this pass
	}
	prev := l.view
	l.view = v
	cfg := health.Overlay(l.good, v)
	// A stop must not cut an apply short, as in pass.
	res, err := l.sess.Update(context.WithoutCancel(ctx), cfg, changed)
	if err != nil {
		l.view = prev
		l.sess = nil
		if !errors.Is(err, errNeedFull) {
			log.Warn("changing only the services the checks concern failed; planning in full", "err", err)
		}
		l.pass(ctx, "health")
		return
	}
	l.inForceDown = l.downSet()
	l.sessFor.down = l.inForceDown
	// The verdict is in the kernel; now the rest, which waits no one.
	l.recordView(log, v)
	l.syncHealth(log, cfg)
	l.succeeded()
	if res.Plan == nil || res.Plan.Empty() {
		log.Debug("no changes", "services", strings.Join(changed, ","))
		return
	}
	l.fastSince = l.recGen
	l.count(func(m *metrics.Metrics) { m.AppliedPart(res) })
	s := res.Plan.Summary()
	log.Info("applied", "drift", false, "services", strings.Join(changed, ","), "added", s.Add, "changed", s.Change,
		"removed", s.Remove, "lines", res.Lines, "took", res.Took.Round(time.Millisecond))
	if res.Conntrack.Err != nil {
		log.Warn("conntrack cleanup failed; the rules are applied", "err", res.Conntrack.Err)
	}
}

// keepSession keeps sess, the session before a pass that found nothing to
// change, when it was started for the same configuration, node and
// endpoints down: its rules are the ones in force. Otherwise it starts
// one, which costs about a full render.
func (l *Loop) keepSession(log *slog.Logger, sess session, p *planner.Plan, cfg *config.Config) {
	if sess != nil && l.sessFor.digest == l.digest && l.sessFor.node == l.node && maps.Equal(l.sessFor.down, l.inForceDown) {
		l.sess = sess
		return
	}
	l.startSession(log, p, cfg)
}

// startSession keeps the rules a pass left in force (p's desired ones,
// rendered from cfg) for the verdicts that follow. Only a loop with
// checks has verdicts.
func (l *Loop) startSession(log *slog.Logger, p *planner.Plan, cfg *config.Config) {
	if l.newSession == nil || l.Checks == nil || p == nil || !l.anyChecked() {
		return
	}
	s, err := l.newSession(p, cfg, l.node)
	if err != nil {
		if !errors.Is(err, errNeedFull) {
			log.Warn("keeping the rules for fast changes failed; verdicts take full passes", "err", err)
		}
		return
	}
	if s.Generation() != l.recGen {
		// Something applied between the pass and the session's start:
		// its rules are not the ones the session holds.
		log.Info("the rules changed while keeping them for fast changes; the next verdict takes a full pass",
			"generation", s.Generation(), "expected", l.recGen)
		return
	}
	l.sess = s
	l.sessFor.digest, l.sessFor.node, l.sessFor.down = l.digest, l.node, l.inForceDown
}

// seedView takes the endpoints down in the view a previous reconcile
// left (for the same state directory, whatever became of it) as the ones
// out of the rules in force: the first pass puts them back (checks start
// up), and that is health, not drift.
func (l *Loop) seedView() {
	v, err := engine.ReadHealth(l.Engine.StateDir)
	if err != nil || v == nil {
		return
	}
	down := map[health.Key]bool{}
	for k, st := range v.Endpoints {
		if !st.Up {
			down[k] = true
		}
	}
	l.inForceDown = down
}

// anyChecked reports whether the configuration has a health_check.
func (l *Loop) anyChecked() bool {
	return l.view != nil && len(l.view.Endpoints) > 0
}

// changedServices lists, sorted, the services with an endpoint down in
// one of was and now but not in the other.
func changedServices(was map[health.Key]bool, now map[health.Key]health.Status) []string {
	set := map[string]bool{}
	for k := range was {
		if st, ok := now[k]; !ok || st.Up {
			set[k.Service] = true
		}
	}
	for k, st := range now {
		if !st.Up && !was[k] {
			set[k.Service] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// downSet is the set of endpoints the loop's view has down.
func (l *Loop) downSet() map[health.Key]bool {
	if l.view == nil {
		return nil
	}
	down := map[health.Key]bool{}
	for k, st := range l.view.Endpoints {
		if !st.Up {
			down[k] = true
		}
	}
	return down
}

// healthMoved reports whether the endpoints down now differ from those in
// the rules the loop last applied or found in force: a change the checks
// asked for, not drift.
func (l *Loop) healthMoved() bool {
	return !maps.Equal(l.downSet(), l.inForceDown) && (len(l.inForceDown) > 0 || len(l.downSet()) > 0)
}

// Transition is how the checker reports an endpoint that went up or down
// (rise passes or fall failures in a row): it is logged and counted, and
// a pass follows at once, which takes the endpoint out of the rules or
// puts it back. Safe to call from the checker's goroutine.
func (l *Loop) Transition(k health.Key, st health.Status) {
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	attrs := []any{"event", "endpoint", "service", k.Service, "endpoint", k.Endpoint.String(), "target", st.Target}
	if st.Up {
		log.Info("endpoint up: its checks pass again; back in the rules", append(attrs, "passes", st.Consecutive)...)
	} else {
		log.Warn("endpoint down: its checks fail; taken out of the rules", append(attrs, "failures", st.Consecutive, "err", st.LastError)...)
	}
	l.count(func(m *metrics.Metrics) { m.Transition(k, st.Up) })
	select {
	case l.verdicts() <- struct{}{}:
	default: // a pass is due already; it will see this one too
	}
}

// verdicts is the channel Transition wakes the loop with: made once,
// whichever of Run and the checker's first transition comes first.
func (l *Loop) verdicts() chan struct{} {
	l.verdictOnce.Do(func() { l.verdict = make(chan struct{}, 1) })
	return l.verdict
}

// CheckResult counts one endpoint check (svcnat_health_checks_total).
func (l *Loop) CheckResult(passed bool) {
	l.count(func(m *metrics.Metrics) { m.HealthCheck(passed) })
}

// errNeedFull is the session's "take a full pass".
var errNeedFull = engine.ErrNeedFull
