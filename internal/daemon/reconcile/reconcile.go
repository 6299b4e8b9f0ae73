// Package reconcile is svcnat's long-running mode: a loop over the engine
// that keeps the live rules equal to the configuration. It plans on every
// tick, when a configuration file changes, when asked to reload (SIGHUP),
// and as soon as a canary chain goes missing (a flushed table); it applies
// through the engine when the plan is not empty. It never exits on a bad
// configuration: it keeps the last good one, logs why, and goes on
// repairing drift with it. It never takes a change out of an operator's
// hands: while an apply awaits confirmation it changes nothing, and it
// does not apply again what a revert (or a failed probe) undid, keeping
// the rules the revert left instead (see Loop.held).
package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/daemon/healthcheck"
	"github.com/svcnat/svcnat/internal/daemon/metrics"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// Loop is one reconcile loop. Set its fields, then Run it once.
type Loop struct {
	Engine *engine.Engine
	// Config is the configuration path (a file or a directory), read on
	// every pass and watched for changes.
	Config string
	// Node resolves this host's node name from the configuration's
	// settings.node (the command line's --node and hostname rules).
	Node func(fromSettings string) (string, error)
	// Interval is the longest time without a pass; CanaryEvery the time
	// between canary checks (0: a third of Interval, from 1s to 5s; never
	// less than ten times what a check takes, which on legacy iptables
	// reads the whole table);
	// Debounce how long file events settle before a pass.
	Interval, CanaryEvery, Debounce time.Duration
	// Reload asks for a pass now (SIGHUP).
	Reload <-chan struct{}
	Log    *slog.Logger
	// Metrics and Health are optional. Run sets Health.Healthy.
	Metrics *metrics.Metrics
	Health  *healthcheck.Server
	// NetNS is the network namespace the daemon works in ("" for its
	// own), where Health and the caller's listeners listen; Relisten,
	// optional, opens the caller's listeners again there (closing the old
	// ones) after the namespace was deleted and made again (see
	// followNetNS).
	NetNS    string
	Relisten func() error
	// Loaded, optional, is told every configuration that loads and
	// differs from the last (the command line sets the soft memory limit
	// for its size).
	Loaded func(cfg *config.Config)
	// Checks, optional, runs the services' health_check blocks: the loop
	// gives it every configuration it loads, runs it beside itself, and
	// renders the configuration with the endpoints it finds down taken
	// out (health.Overlay). Whoever made it hands its transitions to
	// Transition.
	Checks Checker

	retry time.Duration // how often lost file watches are tried again (0: min(Interval, 5s))

	good    *config.Config // the last configuration that loaded
	digest  string         // its digest
	node    string
	rejects string // the diagnostics last logged, to log a change once
	prefix  string
	// seen are the configurations loaded, by digest (the last few): the
	// one whose rules are in force while a hold keeps them is among them,
	// unless the loop started during the hold.
	seen    map[string]*config.Config
	seenAt  []string
	waiting bool // the last pass found an apply awaiting confirmation
	// rejected: the configuration on disk was rejected by this pass,
	// which goes on with the last good one (see succeeded).
	rejected bool
	healthy  atomic.Bool
	// keeping: the rules in force are kept, though the configuration on
	// disk is not applied (a hold that repairs them).
	keeping atomic.Bool
	last    atomic.Int64 // when the last pass succeeded (Unix nanoseconds)
	// listenNS identifies the namespace the listeners are in;
	// relistenDue: Relisten failed there, and is tried again.
	listenNS    string
	relistenDue bool

	// verdict: a check changed an endpoint's health since the last pass.
	verdict     chan struct{}
	verdictOnce sync.Once
	// view is the health view the last pass rendered with (and wrote to
	// the state directory); inForceDown the endpoints down in the rules
	// the loop last applied or found in force, to tell a health change
	// from drift.
	view        *health.View
	inForceDown map[health.Key]bool
	// sess keeps the rules between passes, so that a verdict changes
	// only the services it concerns (nil: the next verdict takes a full
	// pass); newSession starts one (nil: never).
	sess       session
	newSession func(p *planner.Plan, cfg *config.Config, node string) (session, error)
	// sessFor is what the session was started for: the configuration's
	// digest, the node and the endpoints down.
	sessFor struct {
		digest, node string
		down         map[health.Key]bool
	}
	// recGen is the generation the last pass found recorded; fastSince
	// the generation in force when a session last changed rules (0:
	// never), which differ from that generation's record only by health.
	recGen, fastSince int64
}

// session is the engine's incremental session (engine.Session).
type session interface {
	Update(ctx context.Context, cfg *config.Config, changed []string) (*engine.Result, error)
	Generation() int64
}

// Checker is the endpoint checker a loop runs (checks.Checker).
type Checker interface {
	// Sync sets the endpoints to check: those of cfg's services with a
	// health_check.
	Sync(cfg *config.Config)
	// View is what the checks found, endpoint by endpoint.
	View() map[health.Key]health.Status
	// Run checks until ctx ends.
	Run(ctx context.Context)
}

// keepSeen is how many loaded configurations the loop remembers.
const keepSeen = 8

// Healthy reports whether the last pass succeeded, within two intervals,
// with the configuration on disk: the daemon's own health (its /healthz).
// A pass that rejected the configuration, or held a reverted one, is no
// success, whatever it kept or repaired: a box stuck on files it does
// not apply must not look healthy.
func (l *Loop) Healthy() bool {
	return l.healthy.Load() && l.recent()
}

// Serving reports whether the rules in force are kept, within two
// intervals: the last pass succeeded, or it held a configuration and kept
// (repaired) the rules the record names, or it went on with the last good
// configuration because the one on disk is rejected. It is kube-proxy's
// serviceProxyHealthy on the health-check ports: a hold is no reason for
// a load balancer to drain the node, whose rules still work.
func (l *Loop) Serving() bool {
	return (l.healthy.Load() || l.keeping.Load()) && l.recent()
}

func (l *Loop) recent() bool {
	return time.Since(time.Unix(0, l.last.Load())) < 2*l.Interval+time.Minute
}

// Run reconciles until ctx ends, then returns nil: a pass under way
// finishes first (an apply is never cut short by the stop).
func (l *Loop) Run(ctx context.Context) error {
	if l.Log == nil {
		l.Log = slog.New(slog.DiscardHandler)
	}
	if l.Debounce == 0 {
		l.Debounce = time.Second
	}
	if l.Health != nil {
		// The ports' serviceProxyHealthy: whether the rules in force are
		// kept, which a hold does not stop (see Serving).
		l.Health.Healthy = l.Serving
	}
	canaryEvery := l.CanaryEvery
	if canaryEvery == 0 {
		canaryEvery = max(min(l.Interval/3, 5*time.Second), time.Second)
	}
	if l.NetNS != "" {
		// The caller opened its listeners in it, just now.
		l.listenNS, _ = netnsIdentity(l.NetNS)
	}
	changed := l.watch(ctx)
	if l.Checks != nil {
		l.seedView()
		done := make(chan struct{})
		checks, stop := context.WithCancel(context.WithoutCancel(ctx))
		go func() { defer close(done); l.Checks.Run(checks) }()
		defer func() {
			stop()
			<-done
			// Nothing checks any more: the one-shot commands go by the
			// files alone from now on, without waiting for staleness. The
			// view stays, stale at once, for show and for the next
			// reconcile (seedView).
			if l.view != nil {
				v := *l.view
				v.WrittenAt, v.StaleAfter = time.Now(), 0
				if err := health.Write(l.Engine.StateDir, &v); err != nil {
					l.Log.Warn("marking the endpoints' health view stale failed", "err", err)
				}
			}
		}()
	}
	tick := time.NewTicker(l.Interval)
	defer tick.Stop()
	if l.newSession == nil {
		l.newSession = func(p *planner.Plan, cfg *config.Config, node string) (session, error) {
			s, err := l.Engine.NewSession(p, cfg, node)
			if err != nil {
				return nil, err // not a nil *engine.Session in an interface
			}
			return s, nil
		}
	}
	canary := time.NewTimer(canaryEvery)
	defer canary.Stop()
	pass := func(why string) {
		l.pass(ctx, why)
		tick.Reset(l.Interval) // an interval from the last pass, whatever caused it
	}
	pass("start")
	for {
		select {
		case <-ctx.Done():
			l.Log.Info("stopping", "event", "stop")
			return nil
		case <-tick.C:
			pass("tick")
		case <-changed:
			pass("config changed")
		case <-l.Reload:
			pass("reload")
		case <-l.verdicts():
			l.healthPass(ctx)
		case <-canary.C:
			// While an apply awaits confirmation its watcher owns the
			// rules: the pass would change nothing.
			if l.prefix == "" || l.waiting {
				canary.Reset(canaryEvery)
				continue
			}
			start := time.Now()
			missing, err := l.Engine.MissingCanaries(l.prefix)
			canary.Reset(max(canaryEvery, 10*time.Since(start)))
			if err != nil {
				l.Log.Warn("checking the canary chains failed", "event", "canary", "err", err)
				continue
			}
			if len(missing) > 0 {
				var where []string
				for _, m := range missing {
					where = append(where, m.String())
				}
				l.Log.Warn("canary chain gone: the table was flushed or reloaded", "event", "canary lost",
					"chain", missing[0].Chain, "tables", strings.Join(where, ", "))
				pass("canary lost") // counts the drift it finds
			}
		}
	}
}

// pass reads the configuration, makes sure the canaries are there, plans,
// and applies a plan that is not empty, or records an empty one whose
// rules the record does not name (see Engine.Unrecorded). Every outcome
// is one log line.
func (l *Loop) pass(ctx context.Context, why string) {
	log := l.Log.With("event", why)
	// The session is kept only by a pass that finds the rules it knows
	// in force (see keepSession); any other outcome ends it.
	sess := l.sess
	l.sess = nil
	l.followNetNS(log)
	l.load(log)
	if l.good == nil {
		l.healthy.Store(false)
		return
	}
	cfg := l.withHealth(log)
	rec, err := l.Engine.Recorded(ctx)
	if err != nil {
		l.failed(log, "reading the state failed", err)
		return
	}
	if l.held(ctx, log, rec, nil) {
		return
	}
	l.recGen = rec.Generation
	l.syncHealth(log, cfg)
	// The canaries are made before the live rules are read, never after:
	// one made after would hide a flush that came between the read and
	// it, and nothing would repair that flush until the next interval.
	l.canaries(log)
	p, err := l.Engine.Plan(cfg, l.node)
	if err != nil {
		l.failed(log, "planning failed", err)
		return
	}
	// An empty plan whose rules the record does not name: an apply
	// committed them but failed to record them (a full disk). The pass
	// records them, and every pass tries again until that works: the
	// record is what rollback, show, a restarted daemon and the metrics
	// go by.
	unrecorded := false
	if p.Empty() {
		if unrecorded, err = l.Engine.Unrecorded(p); err != nil {
			l.failed(log, "reading the state failed", err)
			return
		}
	}
	// The rules differ from the record's only by endpoints this loop's
	// checks took out or brought back: the record is the configuration's,
	// and an endpoint's health is no generation (health.json says it).
	if unrecorded && rec.ConfigDigest == l.digest && (l.healthMoved() || l.fastSince == rec.Generation) {
		unrecorded = false
	}
	if p.Empty() && !unrecorded {
		l.inForceDown = l.downSet()
		l.keepSession(log, sess, p, cfg)
		if l.Metrics != nil {
			l.Metrics.Recorded(rec)
			l.Metrics.Unchanged(p)
		}
		l.succeeded()
		// A quiet tick is not news; any other reason to look is.
		level := slog.LevelInfo
		if why == "tick" {
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "no changes")
		return
	}
	if l.held(ctx, log, rec, p) {
		return
	}
	s := p.Summary()
	// A change the checks asked for is no drift; rules that differ from
	// those this loop left, under the same configuration and health, are.
	drift := rec.ConfigDigest == l.digest && !unrecorded && !l.healthMoved()
	if drift {
		l.count((*metrics.Metrics).Drift)
	}
	// A stop must not cut an apply short: it finishes, then the loop ends.
	// The plan just made is committed as it is (rendered once), unless
	// the rules changed since: then the engine plans again under the lock.
	ctx = context.WithoutCancel(ctx)
	res, err := l.Engine.ApplySaved(ctx, p, l.digest)
	if stale := (*engine.StaleError)(nil); errors.As(err, &stale) {
		// The rules changed since the plan: perhaps a watcher's revert,
		// which this pass must not undo.
		if rec, err := l.Engine.Recorded(ctx); err == nil && l.held(ctx, log, rec, p) {
			return
		}
		res, err = l.Engine.Apply(ctx, cfg, l.node)
	}
	if pe := (*engine.PendingError)(nil); errors.As(err, &pe) {
		l.awaiting(log, pe.Pending.Pending) // an apply by hand began since the pass read the state
		return
	}
	if l.Metrics != nil {
		l.Metrics.Applied(res, err)
	}
	// The plan to record may have become an apply (the rules changed
	// since it was made): then it failed as an apply.
	recordOnly := unrecorded && (res == nil || res.Plan == nil || res.Plan.Empty())
	if err != nil && recordOnly {
		// The rules in force are the configuration's: only their record
		// is missing, which is no reason for a load balancer to drain
		// the node (Serving); /healthz says it (Healthy).
		l.failed(log, "recording the rules failed; they are in force", err)
		l.keeping.Store(true)
		l.last.Store(time.Now().UnixNano())
		return
	}
	if err != nil {
		l.failed(log, "apply failed", err)
		return
	}
	if res.Repaired {
		l.inForceDown = l.downSet()
		l.succeeded()
		log.Warn("recorded the rules in force: the apply that made them had not recorded them", "generation", res.Generation)
		return
	}
	if res.Conntrack.Err != nil {
		log.Warn("conntrack cleanup failed; the rules are applied", "err", res.Conntrack.Err)
	}
	l.inForceDown = l.downSet()
	if res.Generation > 0 {
		l.recGen = res.Generation
	}
	l.startSession(log, res.Plan, cfg)
	l.succeeded()
	log.Info("applied", "drift", drift, "generation", res.Generation, "added", s.Add, "changed", s.Change, "removed", s.Remove,
		"lines", res.Lines, "took", res.Took.Round(time.Millisecond))
}

// load reads the configuration. A rejected one is logged (once per
// change, with every diagnostic's file:line) and counted; the last good
// one stays.
func (l *Loop) load(log *slog.Logger) {
	l.rejected = true // until the files load
	cfg, diags := config.Load(l.Config)
	if diags.HasErrors() {
		l.count((*metrics.Metrics).ConfigFailure)
		lines := config.DiagnosticLines(diags)
		if text := strings.Join(lines, "\n"); text != l.rejects {
			l.rejects = text
			kept := "no configuration has loaded yet: nothing is applied"
			if l.good != nil {
				kept = "keeping the last good configuration"
			}
			log.Error("configuration rejected; "+kept, "problems", len(lines), "diagnostics", strings.Join(lines, "; "))
		}
		return
	}
	l.rejects = ""
	node, err := l.Node(cfg.Settings.Node)
	if err != nil {
		l.count((*metrics.Metrics).ConfigFailure)
		log.Error("configuration rejected; keeping the last good one", "err", err)
		return
	}
	l.rejected = false
	if d := engine.ConfigDigest(cfg); d != l.digest || node != l.node {
		if l.good != nil {
			log.Info("configuration changed", "services", len(cfg.Services), "digest", d)
		} else {
			log.Info("configuration loaded", "services", len(cfg.Services), "digest", d, "node", node)
		}
		l.good, l.digest, l.node, l.prefix = cfg, d, node, cfg.Settings.ChainPrefix
		l.remember(d, cfg)
		if l.Loaded != nil {
			l.Loaded(cfg)
		}
	}
}

// remember keeps cfg by its digest, and forgets the oldest beyond
// keepSeen.
func (l *Loop) remember(digest string, cfg *config.Config) {
	if l.seen == nil {
		l.seen = map[string]*config.Config{}
	}
	if _, ok := l.seen[digest]; !ok {
		l.seenAt = append(l.seenAt, digest)
	}
	l.seen[digest] = cfg
	if len(l.seenAt) > keepSeen {
		delete(l.seen, l.seenAt[0])
		l.seenAt = l.seenAt[1:]
	}
}

// inForce is the configuration whose rules the record says are in force:
// the one loaded with the recorded digest; else (a loop started during a
// hold never loaded it) the one on disk, the closest there is; nil when
// the record has no configuration (a revert removed every chain).
func (l *Loop) inForce(rec *engine.Recorded) *config.Config {
	if rec.Generation > 0 && rec.ConfigDigest == "" {
		return nil
	}
	if cfg, ok := l.seen[rec.ConfigDigest]; ok {
		return cfg
	}
	return l.good
}

// syncHealth serves the health-check ports of cfg (none when nil).
func (l *Loop) syncHealth(log *slog.Logger, cfg *config.Config) {
	if l.Health == nil {
		return
	}
	var svcs []healthcheck.Service
	if cfg != nil {
		svcs = healthcheck.Services(cfg, l.node)
	}
	if err := l.Health.Sync(svcs); err != nil {
		log.Error("health check ports", "err", err)
	}
}

// held reports whether the state's record forbids applying the
// configuration now, and says why, at every pass. While an apply awaits
// confirmation, its watcher decides what the rules are: the loop changes
// none, drift included. When the last record reverted an apply of this
// very configuration, applying it would undo the revert: it is held like
// a rejected configuration (logged, counted, unhealthy) until it changes
// or an operator applies it by hand, which records a generation of it
// that is no revert; meanwhile the loop keeps the rules the revert left
// (see keep). Given the plan p about to be applied, other files that make
// the reverted rules (the reverted apply read a copy of the
// configuration) are held too. The record, not the loop's memory,
// decides, so a restarted daemon holds too. Either way the health-check
// ports describe the rules in force.
func (l *Loop) held(ctx context.Context, log *slog.Logger, rec *engine.Recorded, p *planner.Plan) bool {
	k := l.Engine.Kernel
	switch {
	case rec.Backend != "" && !k.ReadOnly() && rec.Backend.Canonical() != k.Name():
		// svcnat's rules were moved to another backend (apply --backend)
		// since this loop opened its own: writing here would make a
		// second set beside them.
		l.waiting = false
		l.healthy.Store(false)
		l.count((*metrics.Metrics).ReconcileError)
		log.Error("svcnat's rules were moved to another backend; applying nothing here: restart svcnat reconcile to follow them",
			"recorded_backend", rec.Backend, "backend", k.Name())
		return true
	case rec.Pending != nil:
		l.waiting = true
		l.count(func(m *metrics.Metrics) { m.Held(rec, metrics.HeldPending) })
		// The pending apply rendered the checks' view (svcnat apply
		// beside reconcile does): so do its ports.
		l.syncHealth(log, l.withView(l.inForce(rec)))
		l.awaiting(log, *rec.Pending)
		return true
	case rec.RevertedConfig(l.digest) || p != nil && rec.RevertedRules(p):
		l.waiting = false
		l.count(func(m *metrics.Metrics) { m.Held(rec, metrics.HeldReverted) })
		l.healthy.Store(false)
		l.count((*metrics.Metrics).ReconcileError)
		var attrs []any
		if rec.Reverted.Generation != 0 { // 0: the apply recorded no generation (killed, or its probes failed)
			attrs = append(attrs, "generation", rec.Reverted.Generation)
		}
		log.Error("the apply of this configuration was reverted; applying nothing until the configuration changes or an operator applies it",
			append(attrs, "reason", rec.Reverted.Reverted, "reverted_at", rec.RevertedAt, "digest", l.digest)...)
		l.syncHealth(log, l.inForce(rec))
		l.keep(ctx, log, rec)
		return true
	}
	l.waiting = false
	l.keeping.Store(false) // this pass decides the health again
	l.count(func(m *metrics.Metrics) { m.Held(rec, "") })
	return false
}

// keep returns the owned rules to the recorded generation's (the ones the
// revert left) when something changed them — a flush, a reload, a boot
// that restored none — through the engine, recording nothing, so that the
// revert's record, and the hold, stay; then it makes sure the canaries
// are there (first: see pass).
func (l *Loop) keep(ctx context.Context, log *slog.Logger, rec *engine.Recorded) {
	l.canaries(log)
	res, err := l.Engine.RepairRecorded(context.WithoutCancel(ctx), l.prefix)
	if pe := (*engine.PendingError)(nil); errors.As(err, &pe) {
		l.waiting = true
		l.awaiting(log, pe.Pending.Pending) // an apply by hand began since the pass read the state
		return
	}
	if err != nil {
		l.keeping.Store(false)
		if res == nil { // it did not get as far as reading the rules
			res = &engine.Result{Op: engine.OpRepair}
		}
		l.count(func(m *metrics.Metrics) { m.Applied(res, err) })
		log.Error("repairing the rules of the reverted-to generation failed", "generation", rec.Generation, "err", err)
		return
	}
	l.keeping.Store(true)
	l.last.Store(time.Now().UnixNano())
	if res.Applied {
		l.count((*metrics.Metrics).Drift)
		l.count(func(m *metrics.Metrics) { m.Applied(res, nil) })
		s := res.Plan.Summary()
		log.Warn("repaired the rules of the reverted-to generation", "drift", true, "generation", rec.Generation,
			"added", s.Add, "changed", s.Change, "removed", s.Remove, "lines", res.Lines, "took", res.Took.Round(time.Millisecond))
		if res.Conntrack.Err != nil {
			log.Warn("conntrack cleanup failed; the rules are repaired", "err", res.Conntrack.Err)
		}
	}
}

// awaiting says that a pending apply holds the rules: nothing is wrong
// with the daemon, it only waits.
func (l *Loop) awaiting(log *slog.Logger, pd state.Pending) {
	l.succeeded()
	const msg = "an apply awaits confirmation; applying nothing and repairing no drift until it is confirmed or reverted"
	if pd.Status == state.PendingApplying {
		log.Info(msg, "apply", pd.ID, "status", pd.Status)
		return
	}
	log.Info(msg, "apply", pd.ID, "generation", pd.Generation, "deadline", pd.Deadline)
}

func (l *Loop) canaries(log *slog.Logger) {
	if err := l.Engine.EnsureCanaries(l.prefix); err != nil {
		log.Warn("creating the canary chains failed", "err", err)
	}
}

func (l *Loop) failed(log *slog.Logger, what string, err error) {
	l.healthy.Store(false)
	l.count((*metrics.Metrics).ReconcileError)
	log.Error(what, "err", err)
}

// succeeded records a pass that went through. With a rejected
// configuration on disk it kept the rules of the last good one: it serves
// (Serving), but the daemon is not healthy until the files load.
func (l *Loop) succeeded() {
	l.healthy.Store(!l.rejected)
	l.keeping.Store(l.rejected)
	l.last.Store(time.Now().UnixNano())
}

func (l *Loop) count(f func(*metrics.Metrics)) {
	if l.Metrics != nil {
		f(l.Metrics)
	}
}
