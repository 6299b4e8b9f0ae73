package checks

import (
	"container/heap"
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/svcnat/svcnat/internal/kernel/netns"
	"github.com/svcnat/svcnat/internal/probe"
)

// job is one check handed to a worker: a copy of what it needs, so that
// a Sync meanwhile changes nothing under it (gen says whether its result
// still belongs to the entry).
type job struct {
	en       *entry
	gen      uint64
	target   Target
	probe    probe.Probe
	probeErr error
	timeout  time.Duration
	due      time.Time // when it was due
	start    time.Time // when it was handed out
}

// Run checks the targets until ctx ends, then returns once every check
// it started has ended (they are cancelled): it leaves no goroutine
// behind. Checks cancelled so are not counted; a later Run takes the
// schedule up where this one left it. Run panics if the Checker is
// already running.
func (c *Checker) Run(ctx context.Context) {
	n := c.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	c.mu.Lock()
	c.initLocked()
	if c.limit != 0 {
		c.mu.Unlock()
		panic("checks: Run called on a running Checker")
	}
	c.limit = n
	c.mu.Unlock()

	// The queue holds as many jobs as there are workers, and the
	// scheduler hands out no more than that: it never blocks on it.
	jobs := make(chan job, n)
	follow := &follower{name: c.NetNS}
	var wg sync.WaitGroup
	var work func()
	work = func() {
		if c.work(ctx, jobs, follow) {
			wg.Go(work) // this one's thread is stuck in the namespace
		}
	}
	for range n {
		wg.Go(work)
	}
	timer := time.NewTimer(time.Hour)
	defer func() {
		timer.Stop()
		close(jobs)
		wg.Wait()
		follow.close()
		c.mu.Lock()
		c.limit = 0
		c.mu.Unlock()
	}()
	for {
		changes, wait, idle, now := c.pass(jobs)
		if len(changes) > 0 && c.OnChange != nil {
			c.OnChange(changes)
		}
		if idle && c.idle != nil {
			c.idle(now)
		}
		var tick <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tick = timer.C
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-tick:
		}
	}
}

// pass is one look of the scheduler: it takes the flips to deliver (all
// of them once no check is running, or once the first has waited
// flushDelay), hands every due target to the workers while one is free,
// and says how long to sleep (-1: until woken) and whether it is idle
// (nothing running, nothing due at now, nothing to deliver).
func (c *Checker) pass(jobs chan<- job) (changes []Change, wait time.Duration, idle bool, now time.Time) {
	now = c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	wait = -1
	if len(c.pending) > 0 {
		flush := c.flushDelay
		if flush <= 0 {
			flush = defaultFlushDelay
		}
		if age := time.Since(c.pendingSince); c.inFlight == 0 || age >= flush {
			changes, c.pending = c.pending, nil
			sortChanges(changes)
		} else {
			wait = flush - age
		}
	}
	for c.inFlight < c.limit && c.due.dueBy(now) {
		en := c.due.pop()
		en.inFlight = true
		c.inFlight++
		jobs <- job{en: en, gen: en.gen, target: en.target, probe: en.probe, probeErr: en.probeErr,
			timeout: en.settings.timeout, due: en.next, start: now}
	}
	// Saturated: a worker that ends wakes the scheduler. Else sleep
	// until the next is due, but not for less than minInterval, so that
	// targets due close together go out together.
	if c.inFlight < c.limit && c.due.Len() > 0 {
		if w := max(c.due.first().next.Sub(now), minInterval); wait < 0 || w < wait {
			wait = w
		}
	}
	idle = c.inFlight == 0 && len(c.pending) == 0
	return changes, wait, idle, now
}

// work runs the checks it is handed until jobs is closed, or until its
// thread is stuck in the namespace (netns.ErrStuck): then it returns true,
// so that the thread ends with it and another worker takes its place.
func (c *Checker) work(ctx context.Context, jobs <-chan job, follow *follower) (stuck bool) {
	for j := range jobs {
		var err error
		if ctx.Err() == nil {
			err = c.check(ctx, &j, follow)
		}
		c.finish(j, c.now(), err, ctx.Err() == nil)
		if errors.Is(err, netns.ErrStuck) {
			return true
		}
	}
	return false
}

// check makes one check, bounded by its timeout.
func (c *Checker) check(ctx context.Context, j *job, follow *follower) error {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	if c.Check != nil {
		return c.Check(ctx, j.target)
	}
	if j.probeErr != nil {
		return j.probeErr
	}
	if c.NetNS == "" {
		return j.probe.Try(ctx, "", j.timeout)
	}
	d, err := follow.dialer()
	if err != nil {
		return err
	}
	return j.probe.TryDial(ctx, d.DialContext, j.timeout)
}

// nsDialer is a netns.Dialer; tests give fakes (newDialer).
type nsDialer interface {
	Identity() string
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	Close() error
}

// newDialer and netnsIdentity are netns.NewDialer and netns.Identity;
// tests replace them.
var (
	newDialer = func(name string) (nsDialer, error) {
		d, err := netns.NewDialer(name)
		if err != nil {
			return nil, err
		}
		return d, nil
	}
	netnsIdentity = netns.Identity
)

// follower is the dialer the checks into NetNS share (a netns.Dialer: a
// dial by name, netns.Dial, costs more than the check), following the
// namespace the name names: its identity is read again at most once per
// followEvery, and when the namespace was deleted and made again under
// its name (another identity) a dialer into the new one takes the old
// one's place, as reconcile's rules follow it. While the name names no
// namespace (deleted, not made again) checks fail, saying so, as a dial
// into it by name would.
type follower struct {
	name string
	mu   sync.Mutex
	cur  nsDialer   // the one checks use; nil until made
	err  error      // why checks cannot be made now
	at   time.Time  // when the identity was read
	old  []nsDialer // replaced ones, which checks may still use: closed by close
}

// followEvery is how often the checker looks whether its namespace was
// deleted and made again: within it, checks follow.
const followEvery = time.Second

// dialer is the dialer a check uses now, or why there is none.
func (f *follower) dialer() (nsDialer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.at.IsZero() && time.Since(f.at) < followEvery {
		return f.cur, f.err
	}
	f.at = time.Now()
	id, err := netnsIdentity(f.name)
	if err == nil && (f.cur == nil || f.cur.Identity() != id) {
		var d nsDialer
		if d, err = newDialer(f.name); err == nil {
			if f.cur != nil {
				f.old = append(f.old, f.cur)
			}
			f.cur = d
		}
	}
	f.err = err
	if err != nil {
		return nil, err
	}
	return f.cur, nil
}

// close closes the dialers once no check runs.
func (f *follower) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range append(f.old, f.cur) {
		if d != nil {
			d.Close()
		}
	}
	f.cur, f.old = nil, nil
}

// finish records a check that ended at end with err (ran: it was not
// cancelled by Run's end) and puts its target back in the schedule. It
// wakes the scheduler only when it has something to do: a worker freed
// while all were busy, nothing left running, or a first flip to deliver.
func (c *Checker) finish(j job, end time.Time, err error, ran bool) {
	c.mu.Lock()
	en := j.en
	wasFull := c.inFlight >= c.limit
	en.inFlight = false
	c.inFlight--
	recorded := ran && en.gen == j.gen
	first := false
	if recorded {
		if ch, ok := en.record(end, err); ok {
			if len(c.pending) == 0 {
				c.pendingSince, first = time.Now(), true
			}
			c.pending = append(c.pending, ch)
		}
		en.next = nextDue(j.due, j.start, en.settings.interval)
	}
	if en.removed {
		if c.entries[j.target.Key] == en {
			delete(c.entries, j.target.Key)
		}
	} else {
		c.due.schedule(en)
	}
	// The scheduler sleeps until the heap's first entry is due: one that
	// now comes first (a short interval beside long ones) must wake it,
	// or it is checked only when another check ends.
	wake := wasFull || c.inFlight == 0 || first || (!en.removed && en.index == 0)
	c.mu.Unlock()
	if recorded && c.OnResult != nil {
		c.OnResult(j.target.Key, err)
	}
	if wake {
		c.poke()
	}
}

// dueHeap is the targets not in flight, the next due first
// (container/heap); each entry knows its index, so that Sync can move or
// remove it. A slot holds its due time as an offset from base, so that
// comparing two is one integer compare, without a visit to either entry
// (at 50,000 entries those visits, cache misses, were most of the
// scheduler's time).
type dueHeap struct {
	base  time.Time
	slots []slot
}

type slot struct {
	at int64 // next due, in nanoseconds since base
	en *entry
}

func (h *dueHeap) Len() int           { return len(h.slots) }
func (h *dueHeap) Less(i, j int) bool { return h.slots[i].at < h.slots[j].at }
func (h *dueHeap) Swap(i, j int) {
	h.slots[i], h.slots[j] = h.slots[j], h.slots[i]
	h.slots[i].en.index, h.slots[j].en.index = i, j
}

func (h *dueHeap) Push(x any) {
	en := x.(*entry)
	en.index = len(h.slots)
	h.slots = append(h.slots, slot{at: h.offset(en.next), en: en})
}

func (h *dueHeap) Pop() any {
	last := len(h.slots) - 1
	en := h.slots[last].en
	h.slots[last] = slot{}
	h.slots = h.slots[:last]
	en.index = -1
	return en
}

// offset is t in nanoseconds since base (monotonic when both have a
// monotonic reading, so that a wall clock step moves no schedule).
func (h *dueHeap) offset(t time.Time) int64 {
	if h.base.IsZero() {
		h.base = t
	}
	return int64(t.Sub(h.base))
}

// schedule puts en in the heap at en.next, or moves it there.
func (h *dueHeap) schedule(en *entry) {
	if en.index >= 0 {
		h.slots[en.index].at = h.offset(en.next)
		heap.Fix(h, en.index)
	} else {
		heap.Push(h, en)
	}
}

// remove takes en out of the heap, if it is there.
func (h *dueHeap) remove(en *entry) {
	if en.index >= 0 {
		heap.Remove(h, en.index)
	}
}

// dueBy reports whether the first entry is due at now.
func (h *dueHeap) dueBy(now time.Time) bool {
	return len(h.slots) > 0 && h.slots[0].at <= h.offset(now)
}

// first is the first entry; the heap must not be empty.
func (h *dueHeap) first() *entry { return h.slots[0].en }

func (h *dueHeap) pop() *entry { return heap.Pop(h).(*entry) }
