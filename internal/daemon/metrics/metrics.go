// Package metrics keeps svcnat's Prometheus series: what the engine's runs
// did (applies, their duration and result, rollbacks), what svcnat owns,
// and what svcnat reconcile saw (drift, errors, configuration failures).
// reconcile serves them on /metrics; one-shot commands write them in the
// node_exporter textfile format (--metrics-file).
package metrics

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/svcnat/svcnat/internal/applier"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
)

// Metrics are one process's series, in a registry of their own.
type Metrics struct {
	Registry *prometheus.Registry

	lastApply       prometheus.Gauge
	lastSuccess     prometheus.Gauge
	generation      prometheus.Gauge
	applies         *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	rollbacks       *prometheus.CounterVec
	ownedChains     *prometheus.GaugeVec
	ownedRules      *prometheus.GaugeVec
	drift           prometheus.Counter
	reconcileErrors prometheus.Counter
	configFailures  prometheus.Counter
	held            *prometheus.GaugeVec
	endpointUp      *prometheus.GaugeVec
	mu              sync.Mutex
	checked         map[health.Key]bool // the endpoints endpointUp has
	healthChecks    *prometheus.CounterVec
	transitions     *prometheus.CounterVec
}

// The reasons reconcile holds a configuration (svcnat_held's label).
const (
	HeldPending  = "pending"  // an apply awaits confirmation
	HeldReverted = "reverted" // the configuration's apply was reverted
)

// New makes the series, registered in a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		lastApply: prometheus.NewGauge(prometheus.GaugeOpts{Name: "svcnat_last_apply_timestamp_seconds",
			Help: "When the rules were last changed (the recorded generation's time), or when the last run that failed to change them ended (Unix time)."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "svcnat_last_apply_success",
			Help: "1 if the last apply, rollback, destroy, revert, reconcile pass or repair succeeded (finding nothing to change is a success), 0 if it failed; a reconcile pass that holds (svcnat_held) leaves it."}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{Name: "svcnat_generation",
			Help: "The generation recorded in the state directory."}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "svcnat_applies_total",
			Help: "Runs that changed rules or tried to, by operation and result (success, failure)."}, []string{"op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "svcnat_apply_duration_seconds",
			Help:    "How long a commit and its verification took, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10)}, []string{"op"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "svcnat_rollbacks_total",
			Help: "Owned chains returned to earlier rules, by reason: failure (an apply failed and was undone), rollback (svcnat rollback), revert (an unconfirmed apply)."},
			[]string{"reason"}),
		ownedChains: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "svcnat_owned_chains",
			Help: "Chains svcnat owns, by family and table (on nftables, the chains of its table; sets and maps are not counted)."}, []string{"family", "table"}),
		ownedRules: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "svcnat_owned_rules",
			Help: "Rules svcnat owns (its chains' rules and its jumps in built-in chains), by family and table."}, []string{"family", "table"}),
		drift: prometheus.NewCounter(prometheus.CounterOpts{Name: "svcnat_drift_detected_total",
			Help: "Times reconcile found the owned rules changed by something else (a flush, a lost canary, an edited chain)."}),
		reconcileErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "svcnat_reconcile_errors_total",
			Help: "Reconcile passes that failed (reading the rules, planning, applying)."}),
		configFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "svcnat_config_load_failures_total",
			Help: "Times the configuration was read and rejected."}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "svcnat_held",
			Help: "1 while reconcile applies nothing, by reason: pending (an apply awaits confirmation), reverted (the configuration's apply was reverted)."}, []string{"reason"}),
		// One series per checked endpoint: the configuration bounds them
		// (config.MaxServiceEndpoints per service), as it bounds the rules.
		endpointUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "svcnat_endpoint_up",
			Help: "1 while an endpoint of a service with a health_check is up (in the rules as configured), 0 while its checks took it out."}, []string{"service", "endpoint"}),
		healthChecks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "svcnat_health_checks_total",
			Help: "Endpoint health checks made, by result (pass, fail)."}, []string{"result"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "svcnat_endpoint_transitions_total",
			Help: "Times an endpoint's checks took it out (to=down) or brought it back (to=up)."}, []string{"to"}),
	}
	for _, r := range []string{"pass", "fail"} {
		m.healthChecks.WithLabelValues(r)
	}
	for _, r := range []string{"up", "down"} {
		m.transitions.WithLabelValues(r)
	}
	for _, r := range []string{HeldPending, HeldReverted} {
		m.held.WithLabelValues(r).Set(0)
	}
	m.Registry.MustRegister(m.lastApply, m.lastSuccess, m.generation, m.applies, m.duration, m.rollbacks,
		m.ownedChains, m.ownedRules, m.drift, m.reconcileErrors, m.configFailures, m.held,
		m.endpointUp, m.healthChecks, m.transitions)
	return m
}

// Applied records a run of the engine that changed rules or tried to:
// apply, rollback, destroy, revert. A run that found nothing to change
// records what is owned, and a success; the time and the generation stay
// what Recorded set.
func (m *Metrics) Applied(res *engine.Result, err error) {
	if errors.Is(err, engine.ErrCancelled) {
		return // nobody said yes: nothing was tried
	}
	if res == nil {
		if err != nil {
			m.failed(engine.OpApply, err)
		}
		return
	}
	if res.Generation > 0 {
		m.generation.Set(float64(res.Generation))
	}
	if err != nil {
		m.failed(res.Op, err)
		if res.Plan != nil {
			m.Owned(res.Plan.Prefix, res.Plan.Live)
		}
		return
	}
	if res.Plan != nil {
		m.Owned(res.Plan.Prefix, res.Plan.Desired)
	}
	if !res.Applied {
		m.lastSuccess.Set(1) // nothing to change is a success
		return
	}
	m.applies.WithLabelValues(string(res.Op), "success").Inc()
	m.duration.WithLabelValues(string(res.Op)).Observe(res.Took.Seconds())
	m.lastApply.SetToCurrentTime()
	m.lastSuccess.Set(1)
	switch {
	case res.Op == engine.OpRollback:
		m.rollbacks.WithLabelValues("rollback").Inc()
	case res.Op == engine.OpRevert:
		m.rollbacks.WithLabelValues("revert").Inc()
	}
}

// AppliedPart records a run that changed some services' rules and
// succeeded (reconcile following a health verdict): what it owns stays as
// the last full pass counted it, as the run read no more than its part.
func (m *Metrics) AppliedPart(res *engine.Result) {
	m.applies.WithLabelValues(string(res.Op), "success").Inc()
	m.duration.WithLabelValues(string(res.Op)).Observe(res.Took.Seconds())
	m.lastApply.SetToCurrentTime()
	m.lastSuccess.Set(1)
}

func (m *Metrics) failed(op engine.Op, err error) {
	m.applies.WithLabelValues(string(op), "failure").Inc()
	m.lastApply.SetToCurrentTime()
	m.lastSuccess.Set(0)
	var ae *applier.Error
	if errors.As(err, &ae) && ae.RolledBack {
		m.rollbacks.WithLabelValues("failure").Inc()
	}
}

// Owned sets what prefix owns from owned rules (a plan's Desired after an
// apply, its Live otherwise).
func (m *Metrics) Owned(prefix string, owned map[backend.Family]*backend.Ruleset) {
	m.ownedChains.Reset()
	m.ownedRules.Reset()
	for _, f := range backend.Families {
		rs := owned[f]
		if rs == nil {
			continue
		}
		// On nftables the table is the owner's whole (rs is its owned
		// part): every chain of it counts, its sets and maps do not.
		owns := func(c *backend.Chain) bool { return backend.Owns(prefix, c.Name) }
		if rs.Syntax == backend.NFTables {
			owns = func(c *backend.Chain) bool { return c.Kind == backend.KindChain }
		}
		for _, t := range rs.Tables {
			chains, n := 0, 0
			for _, c := range t.Chains {
				if owns(c) {
					chains++
				}
				n += len(c.Rules)
			}
			m.ownedChains.WithLabelValues(f.String(), t.Name).Set(float64(chains))
			m.ownedRules.WithLabelValues(f.String(), t.Name).Set(float64(n))
		}
	}
}

// Recorded sets what the state directory's record says: the current
// generation and, once one is recorded, when, as the last run that
// changed rules and succeeded (a run that fails records nothing). A
// process sets it before its first scrape or textfile, so that a host at
// generation 18 never reads as generation 0; reconcile sets it again at
// each pass that applies nothing, as another process may have applied.
func (m *Metrics) Recorded(r *engine.Recorded) {
	if r == nil {
		return
	}
	m.generation.Set(float64(r.Generation))
	if r.Generation > 0 {
		if !r.AppliedAt.IsZero() {
			m.lastApply.Set(float64(r.AppliedAt.UnixNano()) / 1e9)
		}
		m.lastSuccess.Set(1)
	}
}

// Held records a reconcile pass that applied nothing for reason
// (HeldPending, HeldReverted; "" for a pass that holds nothing): 1 for
// that reason's svcnat_held, 0 for the others. The generation is the
// record's; svcnat_last_apply_success and the time stay those of the last
// run that changed rules or tried to (the revert, a repair): holding is
// not a run, and its error is counted (ReconcileError) where it is one.
func (m *Metrics) Held(r *engine.Recorded, reason string) {
	for _, h := range []string{HeldPending, HeldReverted} {
		v := 0.0
		if h == reason {
			v = 1
		}
		m.held.WithLabelValues(h).Set(v)
	}
	if reason != "" && r != nil {
		m.generation.Set(float64(r.Generation))
	}
}

// Unchanged records a reconcile pass that found nothing to change: a
// success; what is owned now.
func (m *Metrics) Unchanged(p *planner.Plan) {
	m.Owned(p.Prefix, p.Live)
	m.lastSuccess.Set(1)
}

// EndpointHealth sets svcnat_endpoint_up to the checked endpoints of view,
// and drops the series of endpoints no longer checked.
// The series of endpoints still checked are set in place, never reset:
// a scrape meanwhile must not find them missing (absent() alerts).
func (m *Metrics) EndpointHealth(view map[health.Key]health.Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.checked {
		if _, ok := view[k]; !ok {
			m.endpointUp.DeleteLabelValues(k.Service, k.Endpoint.String())
			delete(m.checked, k)
		}
	}
	if m.checked == nil {
		m.checked = map[health.Key]bool{}
	}
	for k, st := range view {
		v := 0.0
		if st.Up {
			v = 1
		}
		m.endpointUp.WithLabelValues(k.Service, k.Endpoint.String()).Set(v)
		m.checked[k] = true
	}
}

// HealthCheck counts one endpoint check, passed or failed.
func (m *Metrics) HealthCheck(passed bool) {
	r := "fail"
	if passed {
		r = "pass"
	}
	m.healthChecks.WithLabelValues(r).Inc()
}

// Transition counts an endpoint that went up or down, and sets its
// svcnat_endpoint_up.
func (m *Metrics) Transition(k health.Key, up bool) {
	to, v := "down", 0.0
	if up {
		to, v = "up", 1
	}
	m.transitions.WithLabelValues(to).Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.checked == nil {
		m.checked = map[health.Key]bool{}
	}
	m.checked[k] = true
	m.endpointUp.WithLabelValues(k.Service, k.Endpoint.String()).Set(v)
}

// Drift counts owned rules found changed by something else.
func (m *Metrics) Drift() { m.drift.Inc() }

// ReconcileError counts a failed reconcile pass.
func (m *Metrics) ReconcileError() { m.reconcileErrors.Inc() }

// ConfigFailure counts a rejected configuration.
func (m *Metrics) ConfigFailure() { m.configFailures.Inc() }

// WriteFile writes the series to path in the text format, atomically (a
// temporary file renamed), for node_exporter's textfile collector, which
// wants a name ending in .prom.
// Its errors name path, never the temporary file: that name (path with
// random digits) is nothing the operator gave or can find afterwards.
func (m *Metrics) WriteFile(path string) error {
	err := prometheus.WriteToTextfile(path, m.Registry)
	var pe *os.PathError
	var le *os.LinkError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return fmt.Errorf("%s: %w", path, pe.Err)
	case errors.As(err, &le):
		return fmt.Errorf("%s: %w", path, le.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}
