// Package checks is svcnat reconcile's active endpoint checker: it sends
// each service's health_check (tcp connect, http GET, udp send/expect:
// internal/probe's checks, one try at a time) to every endpoint of the
// service, from the namespace the rules are in (NetNS), to the endpoint's
// address and the checked port, never through a service address. It
// keeps a health.Status per endpoint: an endpoint goes down after Fall
// failures in a row and comes back after Rise passes in a row, as
// HAProxy's check rise/fall and keepalived's checks do.
//
// Every endpoint of a service with a health_check is checked, whatever
// its ready, serving and terminating conditions: show displays the state
// of each, and an endpoint the file makes ready again already has a
// verdict. A check never puts in an endpoint the file marks not ready
// (health.Overlay only takes endpoints out), so checking one is harmless.
// A new endpoint (or one whose check changed) starts up and unchecked,
// Since the Sync that made it: until its first verdict the file's
// conditions alone decide, as they did before there were checks, and a
// new endpoint is not held out of the rules for rise × interval.
//
// Cost is linear in endpoints and bounded in concurrency: one scheduler
// goroutine keeps the endpoints in a heap by the time their next check is
// due, and a pool of Concurrency workers runs the checks, each bounded by
// its timeout. There is no goroutine or timer per endpoint. An endpoint's
// first check comes at a point of its interval chosen by a hash of its
// key, so 50,000 endpoints do not fire at once. When every worker is busy
// checks run late, never piling up: an endpoint has at most one check in
// flight, and a check that starts more than an interval late skips the
// slots it missed.
//
// BenchmarkScheduler50k measures the checker itself (a check that
// returns at once, on a simulated clock): on the 2-CPU lab machine,
// 2.1–2.5 µs of CPU and 4 allocations (272 B, most of them the check's
// timeout context) per check, that is 53–62 ms of CPU per second, about
// 6% of one core, for 50,000 endpoints checked every 2 s, before the
// checks' own sockets; and 381 bytes of heap per endpoint (19 MB at
// 50,000). The sockets cost far more: BenchmarkTCPCheck (root) measures
// 75–120 µs of CPU per tcp check to a listener in svcnat's own namespace
// (both ends of the connection counted), and 145–270 µs for a dial into
// another by name (netns.Dial opens the namespace and starts a thread to
// enter it and leave it, per dial). So the checks into NetNS share a
// netns.Dialer, which keeps the namespace open and switches the dialling
// goroutine's own thread into it for socket(2) alone: as much as a check
// without a namespace, within the machine's noise (netns-dialer). Workers
// that entered the namespace for good, one thread each, cost as little in
// that benchmark but 1.3–2× as much in the daemon, where every wait of a
// goroutine locked to its thread is a switch of threads. The dialer
// follows the namespace when it is deleted and made again under its name:
// its identity is read at most once a second, and a dialer into the new
// one replaces the old. BenchmarkReconcileChecks (integration) measures
// the daemon at 10,000 services (docs/PERFORMANCE.md).
//
// The package prints nothing and writes no file: results and transitions
// go to the caller's callbacks (OnResult, OnChange), which log, count and
// re-render.
package checks

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/echo"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/probe"
)

// DefaultConcurrency is the bound on checks in flight when
// Checker.Concurrency is 0. A check that times out holds its worker for
// the whole timeout: endpoints that time out × timeout / interval is the
// concurrency under which dead endpoints alone make every check late.
const DefaultConcurrency = 64

// Target is one endpoint to check: its key, the address and port the
// check goes to, and the service's health_check.
type Target struct {
	Key         health.Key
	Addr        netip.AddrPort
	HealthCheck *config.HealthCheck
}

// Change is one endpoint's Up flipping: its status after the check that
// flipped it and before, and that check's error ("" when it passed).
type Change struct {
	Key          health.Key
	Status, Prev health.Status
	Err          string
}

// Checker checks endpoints. Set its fields, Sync it with a
// configuration, and Run it; Sync and View may be called at any time,
// from any goroutine.
type Checker struct {
	// NetNS is the network namespace checks are sent from ("" for this
	// one), as --netns names it.
	NetNS string
	// Concurrency bounds the checks in flight (0: DefaultConcurrency).
	// Run reads it when it starts.
	Concurrency int
	// Now is the clock statuses and schedules are kept by (nil:
	// time.Now); tests give a fake one.
	Now func() time.Time
	// Check makes one check of t within ctx, which ends at the check's
	// timeout (nil: the probe the health_check describes, from NetNS);
	// tests give a fake one.
	Check func(ctx context.Context, t Target) error
	// OnResult, optional, is called after every check whose result was
	// recorded (not one whose endpoint was removed or changed meanwhile),
	// with its error (nil: it passed); from the workers, concurrently.
	OnResult func(key health.Key, err error)
	// OnChange, optional, is called with the endpoints whose Up flipped,
	// sorted by key, from Run's goroutine, one call at a time and never
	// with a lock held (it may call View). Flips found by checks that ran
	// together come in one call: a flip waits for the checks still running
	// for at most 20 ms. Checks wait while it runs: it should hand its
	// work off rather than do it.
	OnChange func(changes []Change)

	mu           sync.Mutex
	entries      map[health.Key]*entry // removed entries stay while in flight
	due          dueHeap               // entries not in flight, by next check
	epoch        uint64                // Sync's pass, marking the entries it saw
	inFlight     int                   // checks dispatched and not ended
	limit        int                   // Run's concurrency; 0 when not running
	pending      []Change              // flips not yet delivered
	pendingSince time.Time             // wall time the first pending flip was found
	wake         chan struct{}         // tells the scheduler to look again

	// flushDelay is how long a flip waits for checks still running
	// (0: defaultFlushDelay); idle, for tests and the benchmark, is told
	// each time the scheduler goes to sleep with nothing running and
	// nothing due at now.
	flushDelay time.Duration
	idle       func(now time.Time)
}

// defaultFlushDelay bounds what batching flips adds to their delivery.
const defaultFlushDelay = 20 * time.Millisecond

// settings is what of a health_check decides how a target is checked
// (its port is in the target's address): a target keeps its status
// across Syncs while these are equal.
type settings struct {
	protocol, path, send, expect string
	interval, timeout            time.Duration
	rise, fall                   int
}

// minInterval keeps a zero interval (which validation refuses) from
// turning the scheduler into a busy loop; it is also the scheduler's
// timer slack.
const minInterval = 10 * time.Millisecond

func settingsOf(hc *config.HealthCheck) settings {
	s := settings{protocol: hc.Protocol, path: hc.Path, send: hc.Send, expect: hc.Expect,
		interval: max(hc.Interval, minInterval), timeout: hc.Timeout, rise: max(hc.Rise, 1), fall: max(hc.Fall, 1)}
	if s.timeout <= 0 {
		s.timeout = s.interval
	}
	return s
}

// entry is one target's schedule and status.
type entry struct {
	target   Target
	settings settings
	probe    probe.Probe
	probeErr error // the probe could not be made: every check fails with it
	st       health.Status
	lastOK   bool // the last check passed (meaningful when st.Consecutive > 0)
	next     time.Time
	index    int    // in Checker.due; -1 when not there (in flight)
	gen      uint64 // bumped when the target or its settings change
	epoch    uint64
	inFlight bool
	removed  bool // gone from the configuration while in flight
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Checker) initLocked() {
	if c.entries == nil {
		c.entries = map[health.Key]*entry{}
		c.wake = make(chan struct{}, 1)
	}
}

// poke wakes the scheduler; wakes that come before it looks merge.
func (c *Checker) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Sync makes cfg's endpoints the targets: every endpoint of every service
// with a health_check, at the endpoint's address and the check's port
// (HealthCheck.CheckedPort; an endpoint without one is not checked). A
// target whose key, address and check settings are unchanged keeps its
// status and schedule; a new or changed one starts up and unchecked,
// since now, its first check at a point of its interval set by its key;
// one no longer in cfg is dropped (a check of it in flight is let end and
// its result ignored). Sync(nil) drops every target.
func (c *Checker) Sync(cfg *config.Config) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.initLocked()
	c.epoch++
	var services []*config.Service
	if cfg != nil {
		services = cfg.Services
	}
	for _, s := range services {
		hc := s.HealthCheck
		if hc == nil {
			continue
		}
		set := settingsOf(hc)
		for _, e := range s.Endpoints {
			port, ok := hc.CheckedPort(s, e)
			if !ok || port < 1 || port > 65535 {
				continue
			}
			key := health.Key{Service: s.Name, Endpoint: e.Address}
			addr := netip.AddrPortFrom(e.Address, uint16(port))
			en := c.entries[key]
			if en != nil && !en.removed && en.target.Addr == addr && en.settings == set {
				en.target.HealthCheck = hc
				en.epoch = c.epoch
				continue
			}
			if en == nil {
				en = &entry{index: -1}
				c.entries[key] = en
			}
			en.reset(Target{Key: key, Addr: addr, HealthCheck: hc}, set, now)
			en.epoch = c.epoch
			if !en.inFlight {
				c.due.schedule(en)
			}
		}
	}
	for key, en := range c.entries {
		if en.epoch == c.epoch || en.removed {
			continue
		}
		c.due.remove(en)
		if en.inFlight {
			en.removed = true
			en.gen++
		} else {
			delete(c.entries, key)
		}
	}
	c.poke()
}

// reset makes en a fresh target t, first checked at a point of its
// interval set by its key.
func (en *entry) reset(t Target, set settings, now time.Time) {
	en.target, en.settings = t, set
	en.gen++
	en.removed = false
	en.st = health.Status{Up: true, Since: now, Target: t.Addr.String(), Check: health.CheckID(t.HealthCheck, t.Addr.String())}
	en.lastOK = false
	en.probe, en.probeErr = probe.New(set.protocol, en.st.Target, set.path, set.send, set.expect)
	en.probe = en.probe.PassRedirects()
	en.next = now.Add(jitter(t.Key, set.interval))
}

// jitter spreads first checks over the interval by a hash of the key
// (FNV-1a, inline so that it allocates nothing).
func jitter(k health.Key, interval time.Duration) time.Duration {
	h := uint64(14695981039346656037)
	add := func(b byte) { h = (h ^ uint64(b)) * 1099511628211 }
	for i := range len(k.Service) {
		add(k.Service[i])
	}
	for _, b := range k.Endpoint.As16() {
		add(b)
	}
	return time.Duration(h % uint64(interval))
}

// View returns a snapshot of every target's status.
func (c *Checker) View() map[health.Key]health.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[health.Key]health.Status, len(c.entries))
	for k, en := range c.entries {
		if !en.removed {
			out[k] = en.st
		}
	}
	return out
}

// record counts a check of en that ended at end with err, and returns the
// change when it flipped Up.
func (en *entry) record(end time.Time, err error) (Change, bool) {
	prev := en.st
	st := &en.st
	ok := err == nil
	if st.Consecutive > 0 && en.lastOK == ok {
		st.Consecutive++
	} else {
		st.Consecutive = 1
	}
	en.lastOK = ok
	st.LastCheck = end
	st.LastError = ""
	if !ok {
		// Cut: a udp reply is quoted in its error, and 50,000 of them
		// are kept.
		st.LastError = echo.Text(err.Error())
	}
	flipped := false
	switch {
	case ok && st.Consecutive >= en.settings.rise:
		st.Checked = true
		if !st.Up {
			st.Up, st.Since, flipped = true, end, true
		}
	case !ok && st.Consecutive >= en.settings.fall:
		st.Checked = true
		if st.Up {
			st.Up, st.Since, flipped = false, end, true
		}
	}
	if !flipped {
		return Change{}, false
	}
	return Change{Key: en.target.Key, Status: *st, Prev: prev, Err: st.LastError}, true
}

// nextDue is when a check due at due and started at start is next due:
// one interval on, or, when it started later than that, the first slot of
// its phase after start (a late check does not bring a burst of catching
// up).
func nextDue(due, start time.Time, interval time.Duration) time.Time {
	next := due.Add(interval)
	if next.After(start) {
		return next
	}
	return due.Add((start.Sub(due)/interval + 1) * interval)
}

// sortChanges orders changes by service, then endpoint.
func sortChanges(cs []Change) {
	slices.SortFunc(cs, func(a, b Change) int {
		if c := strings.Compare(a.Key.Service, b.Key.Service); c != 0 {
			return c
		}
		return a.Key.Endpoint.Compare(b.Key.Endpoint)
	})
}
