package checks

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/config"
)

// An endpoint with a short interval beside endpoints whose checks hang
// for their whole (long) timeout is checked at its own interval: each of
// its checks, once done, comes first in the heap again and must wake the
// scheduler, which otherwise sleeps until a hung check ends.
func TestShortIntervalBesideHungChecks(t *testing.T) {
	fast := check(2, 3)
	fast.Interval, fast.Timeout = 100*time.Millisecond, 50*time.Millisecond
	slow := check(2, 3)
	slow.Interval, slow.Timeout = 10*time.Second, 9*time.Second
	var addrs []string
	for i := 2; i < 22; i++ {
		addrs = append(addrs, fmt.Sprintf("10.0.0.%d", i))
	}
	cfg := &config.Config{Services: []*config.Service{service("a/fast", fast, "10.0.0.1"), service("b/slow", slow, addrs...)}}
	var n atomic.Int64
	c := &Checker{Check: func(ctx context.Context, tg Target) error {
		if tg.Key.Service == "a/fast" {
			n.Add(1)
			return nil
		}
		<-ctx.Done() // hangs until its timeout, or the checker stops
		return ctx.Err()
	}}
	c.Sync(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// 20 checks take 2s at the fast endpoint's interval; without the
	// wake-up it got one about every half second.
	deadline := time.Now().Add(6 * time.Second)
	for n.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("the 100ms endpoint was checked %d times in 6s beside hung checks", n.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
