package state

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// helperEnv makes the test binary, re-executed, act as another svcnat process
// (see TestHelperProcess); its value is the role.
const helperEnv = "SVCNAT_STATE_HELPER"

// TestHelperProcess is not a test: it is the body of the child processes the
// lock tests start.
//
//	hold:  take the lock, print "locked", hold it until stdin closes
//	count: take and release the lock N times, logging to LOG inside it
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		return
	}
	d, err := Open(os.Getenv("DIR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch role {
	case "hold":
		l, err := d.Lock(context.Background(), time.Minute)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("locked")
		// Reading stdin until EOF ties our life to the parent's: a parent
		// that dies leaves no child holding the lock.
		bufio.NewReader(os.Stdin).ReadString('\n')
		l.Unlock()
	case "count":
		n, _ := strconv.Atoi(os.Getenv("N"))
		for range n {
			if err := countOnce(d, os.Getenv("LOG")); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
	}
	os.Exit(0)
}

// countOnce logs "start PID" and "end PID" while holding the lock; with the
// lock working, no other line can come between the two.
func countOnce(d *Dir, log string) error {
	l, err := d.Lock(context.Background(), time.Minute)
	if err != nil {
		return err
	}
	defer l.Unlock()
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, what := range []string{"start", "end"} {
		if _, err := fmt.Fprintf(f, "%s %d\n", what, os.Getpid()); err != nil {
			return err
		}
	}
	return nil
}

func helper(t *testing.T, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

func TestLockTimeout(t *testing.T) {
	d := openTemp(t)
	ctx := context.Background()
	held, err := d.Lock(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 50 * time.Millisecond
	start := time.Now()
	_, err = d.Lock(ctx, timeout)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock of a held lock = %v, want ErrLocked", err)
	}
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("gave up after %v, before the %v timeout", elapsed, timeout)
	}
	var le *LockError
	if !errors.As(err, &le) || le.Holder == nil || le.Holder.PID != os.Getpid() {
		t.Fatalf("error %v does not name this process as holder", err)
	}
	want := fmt.Sprintf("state directory %s is locked by pid %d (%s", d.Path(), os.Getpid(), filepath.Base(os.Args[0]))
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), ") since ") {
		t.Errorf("error %q\nwant it to start %q and say since when", err, want)
	}

	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := held.Unlock(); err != nil {
		t.Errorf("second Unlock = %v, want nil", err)
	}
	if b, err := os.ReadFile(filepath.Join(d.Path(), "lock")); err != nil || len(b) != 0 {
		t.Errorf("lock file holds %q (%v) after Unlock, want it empty", b, err)
	}
	l, err := d.Lock(ctx, 0)
	if err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	l.Unlock()
}

func TestLockContextCancel(t *testing.T) {
	d := openTemp(t)
	held, err := d.Lock(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Lock(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestLockReleasedOnKill holds the lock in a child process, kills it with
// SIGKILL and checks the lock is free again: nothing stale is left behind.
func TestLockReleasedOnKill(t *testing.T) {
	d := openTemp(t)
	cmd := helper(t, "hold", "DIR="+d.Path())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("child said %q, %v; want locked", line, err)
	}

	ctx := context.Background()
	_, err = d.Lock(ctx, 0)
	var le *LockError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) {
		t.Fatalf("Lock held by the child = %v, want ErrLocked", err)
	}
	if le.Holder == nil || le.Holder.PID != cmd.Process.Pid {
		t.Errorf("error %v does not name the child, pid %d", err, cmd.Process.Pid)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	l, err := d.Lock(ctx, 10*time.Second)
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	l.Unlock()
}

// TestLockExclusiveGoroutines checks that within one process, where flock
// locks belong to open files rather than processes, one holder at a time.
func TestLockExclusiveGoroutines(t *testing.T) {
	d := openTemp(t)
	var holders atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				l, err := d.Lock(context.Background(), time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if n := holders.Add(1); n != 1 {
					t.Errorf("%d goroutines hold the lock at once", n)
				}
				runtime.Gosched() // give another goroutine the chance to get in wrongly
				holders.Add(-1)
				l.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestLockExclusiveProcesses runs processes that log inside the lock and
// checks their log entries never interleave.
func TestLockExclusiveProcesses(t *testing.T) {
	d := openTemp(t)
	log := filepath.Join(t.TempDir(), "log")
	const procs, n = 3, 30
	var cmds []*exec.Cmd
	for range procs {
		cmd := helper(t, "count", "DIR="+d.Path(), "LOG="+log, "N="+strconv.Itoa(n))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2*procs*n {
		t.Fatalf("log has %d lines, want %d", len(lines), 2*procs*n)
	}
	for i := 0; i < len(lines); i += 2 {
		pid, ok := strings.CutPrefix(lines[i], "start ")
		if !ok || lines[i+1] != "end "+pid {
			t.Fatalf("lines %d-%d: %q, %q: two processes held the lock at once", i+1, i+2, lines[i], lines[i+1])
		}
	}
}

func TestHoldAndHeld(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if d.Held("watch-1") {
		t.Fatal("held before anyone holds it")
	}
	l, err := d.Hold("watch-1")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Held("watch-1") {
		t.Fatal("not held while held")
	}
	if _, err := d.Hold("watch-1"); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second Hold: %v", err)
	}
	if err := l.Drop(); err != nil {
		t.Fatal(err)
	}
	if d.Held("watch-1") {
		t.Fatal("held after Drop")
	}
}
