package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/health"
)

// fakeClock is a clock that moves only when the test says.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	f := &fakeClock{}
	f.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return f
}

func (f *fakeClock) Now() time.Time          { return time.Unix(0, f.ns.Load()).UTC() }
func (f *fakeClock) Advance(d time.Duration) { f.ns.Add(int64(d)) }

// harness runs a Checker on a fake clock with a fake check whose answer
// per endpoint the test sets.
type harness struct {
	t   *testing.T
	c   *Checker
	clk *fakeClock

	mu       sync.Mutex
	answer   map[health.Key]error // nil: the check passes
	changes  [][]Change
	results  map[health.Key]int
	lastIdle atomic.Int64
}

func newHarness(t *testing.T, cfg *config.Config) *harness {
	h := &harness{t: t, clk: newFakeClock(), answer: map[health.Key]error{}, results: map[health.Key]int{}}
	h.c = &Checker{
		Now: h.clk.Now,
		Check: func(ctx context.Context, tg Target) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.answer[tg.Key]
		},
		OnResult: func(k health.Key, err error) {
			h.mu.Lock()
			h.results[k]++
			h.mu.Unlock()
		},
		OnChange: func(cs []Change) {
			h.mu.Lock()
			h.changes = append(h.changes, cs)
			h.mu.Unlock()
		},
		// Flips are delivered when no check is left running, so that
		// what one step finds comes in one call.
		flushDelay: time.Hour,
	}
	h.c.idle = func(now time.Time) { h.lastIdle.Store(now.UnixNano()) }
	h.c.Sync(cfg)
	h.start()
	return h
}

// start runs the checker until the test ends and waits for it to settle.
func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.c.Run(ctx); close(done) }()
	h.t.Cleanup(func() { cancel(); <-done })
	h.settle()
}

// settle waits until the scheduler has looked at the clock's time and
// found nothing due, nothing running and nothing to deliver.
func (h *harness) settle() {
	h.t.Helper()
	h.c.poke()
	want := h.clk.ns.Load()
	waitFor(h.t, "the checker to settle", func() bool { return h.lastIdle.Load() >= want })
}

// step moves the clock on by d and lets every check due by then run.
func (h *harness) step(d time.Duration) {
	h.t.Helper()
	h.clk.Advance(d)
	h.settle()
}

func (h *harness) set(k health.Key, err error) {
	h.mu.Lock()
	h.answer[k] = err
	h.mu.Unlock()
}

func (h *harness) resultsOf(k health.Key) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.results[k]
}

// takeChanges returns the OnChange calls since the last take.
func (h *harness) takeChanges() [][]Change {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := h.changes
	h.changes = nil
	return cs
}

// waitFor polls cond; a condition still false after 10 s fails the test
// (a hang, not a measured time).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func check(rise, fall int) *config.HealthCheck {
	return &config.HealthCheck{Protocol: config.CheckTCP, ServicePort: "http",
		Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: rise, Fall: fall}
}

func service(name string, hc *config.HealthCheck, addrs ...string) *config.Service {
	s := &config.Service{Name: name, HealthCheck: hc,
		Ports: []*config.Port{{Name: "http", Protocol: config.ProtoTCP, Port: 80, TargetPort: 8080}}}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, &config.Endpoint{Address: netip.MustParseAddr(a), Ready: true, Serving: true})
	}
	return s
}

func key(svc, addr string) health.Key {
	return health.Key{Service: svc, Endpoint: netip.MustParseAddr(addr)}
}

var errRefused = errors.New("connection refused")

// An endpoint leaves after fall failures in a row and comes back after
// rise passes in a row; each flip is one change, with the status before
// and after and the check's error.
func TestRiseFall(t *testing.T) {
	k := key("default/web", "10.1.0.1")
	h := newHarness(t, &config.Config{Services: []*config.Service{service("default/web", check(2, 3), "10.1.0.1")}})
	start := h.clk.Now()
	if st := h.c.View()[k]; !st.Up || st.Checked || st.Consecutive != 0 || !st.Since.Equal(start) || st.Target != "10.1.0.1:8080" {
		t.Fatalf("before any check: %+v, want up, unchecked, since the start, target 10.1.0.1:8080", st)
	}
	type want struct {
		up, checked bool
		consecutive int
		flip        bool
	}
	for i, s := range []struct {
		err error
		want
	}{
		{nil, want{true, false, 1, false}},
		{errRefused, want{true, false, 1, false}},
		{errRefused, want{true, false, 2, false}},
		{errRefused, want{false, true, 3, true}},
		{errRefused, want{false, true, 4, false}},
		{nil, want{false, true, 1, false}},
		{nil, want{true, true, 2, true}},
		{nil, want{true, true, 3, false}},
	} {
		h.set(k, s.err)
		h.step(time.Second)
		st := h.c.View()[k]
		if st.Up != s.up || st.Checked != s.checked || st.Consecutive != s.consecutive {
			t.Fatalf("check %d (err %v): %+v, want up %v checked %v consecutive %d", i+1, s.err, st, s.up, s.checked, s.consecutive)
		}
		if (st.LastError != "") != (s.err != nil) || !st.LastCheck.Equal(h.clk.Now()) {
			t.Fatalf("check %d: last check %v error %q, want now and %v", i+1, st.LastCheck, st.LastError, s.err)
		}
		changes := h.takeChanges()
		if !s.flip {
			if len(changes) != 0 {
				t.Fatalf("check %d: changes %+v, want none", i+1, changes)
			}
			continue
		}
		if len(changes) != 1 || len(changes[0]) != 1 {
			t.Fatalf("check %d: changes %+v, want one", i+1, changes)
		}
		ch := changes[0][0]
		if ch.Key != k || ch.Status != st || ch.Prev.Up == st.Up || !st.Since.Equal(h.clk.Now()) {
			t.Fatalf("check %d: change %+v, status %+v", i+1, ch, st)
		}
		if wantErr := ""; s.err != nil && ch.Err != s.err.Error() || s.err == nil && ch.Err != wantErr {
			t.Fatalf("check %d: change error %q, want %v", i+1, ch.Err, s.err)
		}
	}
	if n := h.resultsOf(k); n != 8 {
		t.Fatalf("OnResult called %d times, want 8", n)
	}
}

// Results that alternate never reach rise or fall: nothing flips, up
// or down.
func TestFlapping(t *testing.T) {
	up, down := key("default/web", "10.1.0.1"), key("default/web", "10.1.0.2")
	h := newHarness(t, &config.Config{Services: []*config.Service{service("default/web", check(2, 2), "10.1.0.1", "10.1.0.2")}})
	h.set(down, errRefused)
	h.step(time.Second)
	h.step(time.Second)
	if st := h.c.View()[down]; st.Up {
		t.Fatalf("two failures, fall 2: %+v, want down", st)
	}
	h.takeChanges()
	for i := range 10 {
		// The endpoint up fails when the one down passes, and the
		// other way around, so that each alternates from its run.
		if i%2 == 0 {
			h.set(up, errRefused)
			h.set(down, nil)
		} else {
			h.set(up, nil)
			h.set(down, errRefused)
		}
		h.step(time.Second)
		v := h.c.View()
		if !v[up].Up || v[down].Up || v[up].Consecutive != 1 || v[down].Consecutive != 1 {
			t.Fatalf("flapping, step %d: %+v", i, v)
		}
	}
	if cs := h.takeChanges(); len(cs) != 0 {
		t.Fatalf("flapping flipped: %+v", cs)
	}
}

// Flips found by checks that ran together come in one call, sorted.
func TestFlipsTogether(t *testing.T) {
	addrs := []string{"10.1.0.5", "10.1.0.3", "10.1.0.1", "10.1.0.4", "10.1.0.2"}
	h := newHarness(t, &config.Config{Services: []*config.Service{service("default/web", check(1, 1), addrs...)}})
	for _, a := range addrs {
		h.set(key("default/web", a), errRefused)
	}
	h.step(time.Second)
	cs := h.takeChanges()
	if len(cs) != 1 || len(cs[0]) != len(addrs) {
		t.Fatalf("changes %+v, want one call with %d", cs, len(addrs))
	}
	if !slices.IsSortedFunc(cs[0], func(a, b Change) int { return a.Key.Endpoint.Compare(b.Key.Endpoint) }) {
		t.Fatalf("changes not sorted: %+v", cs[0])
	}
}

// A flip does not wait long for a check that is still running: after
// flushDelay it is delivered on its own.
func TestFlipDoesNotWaitForSlowChecks(t *testing.T) {
	fast, slow := key("default/web", "10.1.0.1"), key("default/web", "10.1.0.2")
	release := make(chan struct{})
	var delivered atomic.Pointer[[]Change]
	clk := newFakeClock()
	c := &Checker{Now: clk.Now, flushDelay: 5 * time.Millisecond,
		Check: func(ctx context.Context, tg Target) error {
			if tg.Key == slow {
				<-release
				return nil
			}
			return errRefused
		},
		OnChange: func(cs []Change) { delivered.Store(&cs) },
	}
	c.Sync(&config.Config{Services: []*config.Service{service("default/web", check(1, 1), "10.1.0.1", "10.1.0.2")}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	defer close(release)
	clk.Advance(time.Second)
	c.poke()
	waitFor(t, "the fast endpoint's flip", func() bool { return delivered.Load() != nil })
	if cs := *delivered.Load(); len(cs) != 1 || cs[0].Key != fast {
		t.Fatalf("delivered %+v, want the fast endpoint's flip alone", cs)
	}
}

// Sync keeps the status of a target whose key, address and check are
// unchanged (whatever else changed: conditions, other endpoints), and
// starts over one whose port or check settings changed; a new endpoint
// starts up and unchecked, since now; a removed one is dropped.
func TestSync(t *testing.T) {
	a, b, c := key("default/web", "10.1.0.1"), key("default/web", "10.1.0.2"), key("default/web", "10.1.0.3")
	cfg := func(mod func(s *config.Service), addrs ...string) *config.Config {
		s := service("default/web", check(1, 1), addrs...)
		if mod != nil {
			mod(s)
		}
		return &config.Config{Services: []*config.Service{s, service("default/other", nil, "10.2.0.1")}}
	}
	h := newHarness(t, cfg(nil, "10.1.0.1", "10.1.0.2"))
	if v := h.c.View(); len(v) != 2 {
		t.Fatalf("view %+v, want the two endpoints of the checked service only", v)
	}
	h.set(a, errRefused)
	h.set(b, errRefused)
	h.step(time.Second)
	down := h.c.View()[a]
	if down.Up {
		t.Fatalf("%v: %+v, want down", a, down)
	}

	// The same configuration, made again; a's conditions changed, and an
	// endpoint was added.
	h.step(time.Second)
	down = h.c.View()[a]
	h.c.Sync(cfg(func(s *config.Service) { s.Endpoints[0].Ready = false }, "10.1.0.1", "10.1.0.2", "10.1.0.3"))
	v := h.c.View()
	if v[a] != down || v[b].Up {
		t.Fatalf("after a Sync that changed no check: %+v, want %v and %v kept down", v, a, b)
	}
	if st := v[c]; !st.Up || st.Checked || !st.Since.Equal(h.clk.Now()) || st.Consecutive != 0 {
		t.Fatalf("a new endpoint: %+v, want up, unchecked, since now", st)
	}

	// A slower interval starts every target over; so does another port.
	// a, which the file now marks not ready, is still checked.
	before := h.resultsOf(a)
	h.step(time.Second)
	if h.resultsOf(a) != before+1 {
		t.Fatalf("%v, marked not ready, was not checked", a)
	}
	h.c.Sync(cfg(func(s *config.Service) { s.HealthCheck.Interval = 2 * time.Second }, "10.1.0.1", "10.1.0.2", "10.1.0.3"))
	for k, st := range h.c.View() {
		if !st.Up || st.Checked || !st.Since.Equal(h.clk.Now()) {
			t.Fatalf("%v after its check changed: %+v, want it started over", k, st)
		}
	}
	h.step(2 * time.Second)
	if st := h.c.View()[a]; st.Up {
		t.Fatalf("%v: %+v, want down again", a, st)
	}
	h.c.Sync(cfg(func(s *config.Service) {
		s.HealthCheck.Interval = 2 * time.Second
		s.Endpoints[0].Ports = map[string]int{"http": 9090}
	}, "10.1.0.1", "10.1.0.2", "10.1.0.3"))
	if st := h.c.View()[a]; !st.Up || st.Target != "10.1.0.1:9090" {
		t.Fatalf("%v on another port: %+v, want started over on 10.1.0.1:9090", a, st)
	}

	// Removed: gone from the view, and never checked again.
	h.c.Sync(cfg(func(s *config.Service) { s.HealthCheck.Interval = 2 * time.Second }, "10.1.0.2"))
	if v := h.c.View(); len(v) != 1 {
		t.Fatalf("after removing two endpoints: %+v", v)
	} else if _, ok := v[b]; !ok {
		t.Fatalf("after removing two endpoints: %+v, want %v kept", v, b)
	}
	before = h.resultsOf(a)
	h.step(2 * time.Second)
	h.step(2 * time.Second)
	if n := h.resultsOf(a); n != before {
		t.Fatalf("a removed endpoint was checked: %d results, had %d", n, before)
	}
	h.c.Sync(nil)
	if v := h.c.View(); len(v) != 0 {
		t.Fatalf("Sync(nil) left %+v", v)
	}
}

// An endpoint removed, or changed, while its check runs: the result is
// not recorded, and an endpoint made again meanwhile gets no second check
// in flight.
func TestSyncWhileInFlight(t *testing.T) {
	k := key("default/web", "10.1.0.1")
	clk := newFakeClock()
	started := make(chan struct{})
	release := make(chan struct{})
	var inFlight, most atomic.Int32
	var results atomic.Int32
	c := &Checker{Now: clk.Now,
		Check: func(ctx context.Context, tg Target) error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			if n > most.Load() {
				most.Store(n)
			}
			started <- struct{}{}
			<-release
			return errRefused
		},
		OnResult: func(health.Key, error) { results.Add(1) },
	}
	withEndpoint := &config.Config{Services: []*config.Service{service("default/web", check(1, 1), "10.1.0.1")}}
	c.Sync(withEndpoint)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	clk.Advance(time.Second)
	c.poke()
	<-started
	c.Sync(&config.Config{})
	if v := c.View(); len(v) != 0 {
		t.Fatalf("removed while in flight: view %+v", v)
	}
	c.Sync(withEndpoint) // back, while the old check still runs
	clk.Advance(10 * time.Second)
	c.poke()
	release <- struct{}{}
	// The endpoint made again is checked once the old check has ended,
	// and that check is the first result counted.
	<-started
	if st := c.View()[k]; !st.Up || st.Consecutive != 0 || results.Load() != 0 {
		t.Fatalf("the old check's result was recorded: %+v, %d results", st, results.Load())
	}
	release <- struct{}{}
	waitFor(t, "the new check's result", func() bool { return results.Load() == 1 })
	if st := c.View()[k]; st.Up || st.Consecutive != 1 {
		t.Fatalf("after the new check: %+v, want down", st)
	}
	if most.Load() != 1 {
		t.Fatalf("%d checks of one endpoint in flight at once", most.Load())
	}
}

// With every worker busy, checks wait: never more than Concurrency in
// flight, never two of one endpoint, and every endpoint is still
// checked.
func TestConcurrencyBound(t *testing.T) {
	const endpoints, limit = 300, 7
	clk := newFakeClock()
	gate := make(chan struct{})
	var cur, most atomic.Int32
	var mu sync.Mutex
	running := map[health.Key]bool{}
	var double atomic.Bool
	checked := map[health.Key]int{}
	c := &Checker{Now: clk.Now, Concurrency: limit,
		Check: func(ctx context.Context, tg Target) error {
			n := cur.Add(1)
			defer cur.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			mu.Lock()
			if running[tg.Key] {
				double.Store(true)
			}
			running[tg.Key] = true
			checked[tg.Key]++
			mu.Unlock()
			select {
			case <-gate:
			case <-ctx.Done():
			}
			mu.Lock()
			delete(running, tg.Key)
			mu.Unlock()
			return nil
		},
	}
	var addrs []string
	for i := range endpoints {
		addrs = append(addrs, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))
	}
	c.Sync(&config.Config{Services: []*config.Service{service("default/web", check(1, 1), addrs...)}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for round := range 3 {
		clk.Advance(time.Second) // every endpoint due, the pool saturated
		c.poke()
		if round == 0 {
			// Wait for the pool to fill before letting any check end: on
			// a loaded machine the gate drained as fast as checks
			// started, and the bound was never reached.
			deadline := time.Now().Add(10 * time.Second)
			for cur.Load() < limit && time.Now().Before(deadline) {
				runtime.Gosched()
			}
		}
		for range endpoints {
			select {
			case gate <- struct{}{}:
			case <-time.After(10 * time.Second):
				mu.Lock()
				n := len(checked)
				mu.Unlock()
				t.Fatalf("timed out waiting for a check: %d endpoints checked, %d checks in flight", n, cur.Load())
			}
		}
	}
	if most.Load() != limit || double.Load() {
		t.Fatalf("at most %d checks in flight (want %d), two of one endpoint at once: %v", most.Load(), limit, double.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range addrs {
		if n := checked[key("default/web", a)]; n != 3 {
			t.Fatalf("%s checked %d times in 3 intervals, want 3", a, n)
		}
	}
}

// Run, ended, leaves no goroutine behind, also when checks were running
// (they are cancelled); on the real clock.
func TestRunLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	hc := check(1, 2)
	hc.Interval, hc.Timeout = 20*time.Millisecond, time.Hour
	var addrs []string
	for i := range 100 {
		addrs = append(addrs, fmt.Sprintf("10.1.0.%d", i+1))
	}
	var blocked atomic.Int32
	var fail atomic.Bool
	c := &Checker{
		Check: func(ctx context.Context, tg Target) error {
			if tg.Key.Endpoint == netip.MustParseAddr("10.1.0.1") {
				blocked.Add(1)
				<-ctx.Done() // only Run's end cancels it: the timeout is an hour
				return ctx.Err()
			}
			if fail.Load() {
				return errRefused
			}
			return nil
		},
	}
	c.Sync(&config.Config{Services: []*config.Service{service("default/web", hc, addrs...)}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	fail.Store(true)
	waitFor(t, "endpoints to go down on the real clock", func() bool { return !c.View()[key("default/web", "10.1.0.2")].Up })
	waitFor(t, "a check to block", func() bool { return blocked.Load() == 1 })
	cancel()
	<-done
	waitFor(t, "Run's goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	if st := c.View()[key("default/web", "10.1.0.1")]; st.Consecutive != 0 {
		t.Fatalf("a check cancelled by Run's end was counted: %+v", st)
	}
}

// First checks spread over the interval: no tenth of it holds twice its
// share of 50,000 endpoints.
func TestJitterSpreads(t *testing.T) {
	const n, buckets = 50000, 10
	var count [buckets]int
	for i := range n {
		k := health.Key{Service: fmt.Sprintf("ns/svc-%d", i/5), Endpoint: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
		count[jitter(k, 2*time.Second)*buckets/(2*time.Second)]++
	}
	for i, c := range count {
		if c > 2*n/buckets || c < n/buckets/2 {
			t.Fatalf("tenth %d of the interval holds %d of %d first checks: %v", i, c, n, count)
		}
	}
}

// A check that starts late skips the slots it missed, keeping its phase.
func TestNextDue(t *testing.T) {
	due := time.Unix(100, 0)
	for _, c := range []struct{ start, want time.Duration }{
		{0, time.Second},
		{500 * time.Millisecond, time.Second},
		{time.Second, 2 * time.Second},
		{3500 * time.Millisecond, 4 * time.Second},
	} {
		if got := nextDue(due, due.Add(c.start), time.Second); !got.Equal(due.Add(c.want)) {
			t.Errorf("started at +%v: next at +%v, want +%v", c.start, got.Sub(due), c.want)
		}
	}
}

// Checks into another namespace share one dialer into it, made once,
// kept while the namespace's identity holds, and replaced when the
// namespace was deleted and made again under its name (another identity);
// they fail while the name names no namespace or no dialer can be made.
// The identity is read at most once per followEvery, whatever the checks,
// and every dialer made is closed at the end.
// (TestChecksFollowANamespaceMadeAgain is the same on the kernel.)
func TestFollowerFollowsTheNamespace(t *testing.T) {
	var (
		now     = "c1"
		nowErr  error
		reads   int
		made    []*fakeDialer
		makeErr error
	)
	oldNew, oldIdentity := newDialer, netnsIdentity
	t.Cleanup(func() { newDialer, netnsIdentity = oldNew, oldIdentity })
	netnsIdentity = func(name string) (string, error) {
		if name != "node" {
			t.Errorf("identity of %q, want node", name)
		}
		reads++
		return now, nowErr
	}
	newDialer = func(name string) (nsDialer, error) {
		if makeErr != nil {
			return nil, makeErr
		}
		d := &fakeDialer{id: now}
		made = append(made, d)
		return d, nil
	}
	f := &follower{name: "node"}
	step := func(what string, wantErr bool, want ...string) {
		t.Helper()
		f.at = time.Time{} // followEvery has passed
		d, err := f.dialer()
		var ids []string
		for _, d := range made {
			ids = append(ids, d.id)
		}
		if (err != nil) != wantErr || !slices.Equal(ids, want) || (err == nil && d != made[len(made)-1]) {
			t.Fatalf("%s: dialer %v, err %v, made %q; want an error %v, made %q", what, d, err, ids, wantErr, want)
		}
	}
	step("first check", false, "c1")
	step("same namespace", false, "c1")
	now = "c2"
	step("made again", false, "c1", "c2")
	now, nowErr = "", errors.New("opening network namespace node: no such file or directory")
	step("deleted", true, "c1", "c2")
	now, nowErr = "c3", nil
	makeErr = errors.New("opening network namespace node: permission denied")
	step("made again, no dialer", true, "c1", "c2")
	makeErr = nil
	step("a dialer at last", false, "c1", "c2", "c3")

	// Within followEvery the identity is not read again.
	reads = 0
	for range 100 {
		if _, err := f.dialer(); err != nil {
			t.Fatal(err)
		}
	}
	if reads != 0 {
		t.Fatalf("%d identity reads within followEvery, want 0", reads)
	}
	f.close()
	for _, d := range made {
		if !d.closed {
			t.Errorf("dialer %s not closed", d.id)
		}
	}
}

type fakeDialer struct {
	id     string
	closed bool
}

func (d *fakeDialer) Identity() string { return d.id }
func (d *fakeDialer) Close() error     { d.closed = true; return nil }
func (d *fakeDialer) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("fake")
}
