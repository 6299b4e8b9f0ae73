package reconcile

import (
	"log/slog"
	"maps"
	"os"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/daemon/metrics"
	"github.com/svcnat/svcnat/internal/health"
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
	v := &health.View{
		WrittenAt: time.Now(),
		// Every pass writes it again, at least once an interval: stale
		// after what Serving allows, or at once when this process is gone.
		StaleAfter:   2*l.Interval + time.Minute,
		PID:          os.Getpid(),
		ConfigDigest: l.digest,
		Endpoints:    l.Checks.View(),
	}
	if err := health.Write(l.Engine.StateDir, v); err != nil {
		// The rules still follow the checks; only the one-shot commands
		// will not know why endpoints are missing.
		log.Warn("recording the endpoints' health failed", "err", err)
	}
	l.view = v
	l.count(func(m *metrics.Metrics) { m.EndpointHealth(v.Endpoints) })
	return health.Overlay(l.good, v)
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
