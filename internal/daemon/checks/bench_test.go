package checks

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/health"
)

// BenchmarkScheduler50k is the checker's own cost at issue 25's size:
// 10,000 services × 5 endpoints, each checked every 2 s (25,000 checks a
// second), by a check that returns at once, so what is measured is the
// scheduler, the pool, the records and the callbacks, not sockets. The
// clock is simulated in steps of minInterval (the scheduler's slack: how
// often it wakes at this load on a real clock); an op is one check.
// cpu-ms/sim-s is the process's CPU time (user + system, GC included) per
// simulated second: the share of a core the checker takes at this size
// is that over 1000. heap-B/endpoint is what Sync keeps per endpoint.
func BenchmarkScheduler50k(b *testing.B) {
	const services, perService = 10000, 5
	cfg := &config.Config{}
	hc := &config.HealthCheck{Protocol: config.CheckTCP, ServicePort: "http",
		Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
	for i := range services {
		s := &config.Service{Name: fmt.Sprintf("ns/svc-%d", i), HealthCheck: hc,
			Ports: []*config.Port{{Name: "http", Protocol: config.ProtoTCP, Port: 80, TargetPort: 8080}}}
		for j := range perService {
			n := i*perService + j
			s.Endpoints = append(s.Endpoints, &config.Endpoint{Ready: true, Serving: true,
				Address: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})})
		}
		cfg.Services = append(cfg.Services, s)
	}
	clk := newFakeClock()
	var results atomic.Int64
	var lastIdle atomic.Int64
	idle := make(chan struct{}, 1)
	c := &Checker{Now: clk.Now,
		Check:    func(context.Context, Target) error { return nil },
		OnResult: func(health.Key, error) { results.Add(1) },
	}
	c.idle = func(now time.Time) {
		lastIdle.Store(now.UnixNano())
		select {
		case idle <- struct{}{}:
		default:
		}
	}
	heap0 := heapInUse()
	c.Sync(cfg)
	perEndpoint := float64(heapInUse()-heap0) / (services * perService)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const step = minInterval
	advance := func() {
		clk.Advance(step)
		want := clk.ns.Load()
		c.poke()
		for lastIdle.Load() < want {
			<-idle
		}
	}
	// One interval first: every endpoint has had its first check.
	for range hc.Interval / step {
		advance()
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, from, steps := cpuTime(), results.Load(), 0
	for results.Load()-from < int64(b.N) {
		advance()
		steps++
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	checks := results.Load() - from
	simulated := time.Duration(steps) * step
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(checks), "cpu-ns/check")
	b.ReportMetric(float64(cpu.Milliseconds())/simulated.Seconds(), "cpu-ms/sim-s")
	b.ReportMetric(float64(checks)/simulated.Seconds(), "checks/sim-s")
	b.ReportMetric(perEndpoint, "heap-B/endpoint")
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
