package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFlockWait: the one flock wait of svcnat's locks (the state lock, the
// network namespace's): busy after the timeout, ctx's error when it ends
// first, and the lock once the holder lets go.
func TestFlockWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l")
	open := func() *os.File {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	holder, waiter := open(), open()
	if err := FlockWait(context.Background(), holder, 0); err != nil {
		t.Fatal(err)
	}
	if err := FlockWait(context.Background(), waiter, 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("a held lock, timeout 0: %v, want ErrLocked", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := FlockWait(ctx, waiter, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("a held lock, ctx ended: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- FlockWait(context.Background(), waiter, time.Hour) }()
	unix.Flock(int(holder.Fd()), unix.LOCK_UN)
	if err := <-done; err != nil {
		t.Fatalf("after the holder let go: %v", err)
	}
}
