package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLocked is matched (with errors.Is) by the error [Dir.Lock] returns when
// another process still holds the lock when the timeout runs out.
var ErrLocked = errors.New("state directory is locked")

// Holder describes the process holding the lock, as it wrote itself into the
// lock file after acquiring it.
type Holder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

// LockError is the error returned when the lock is held by someone else. It
// matches [ErrLocked]. Holder is nil when the lock file named no holder (the
// holder had just acquired it and not yet written itself in).
type LockError struct {
	Dir    string
	Holder *Holder
}

// Error names the holder, so the operator knows whom to wait for or kill.
func (e *LockError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("state directory %s is locked by another process", e.Dir)
	}
	return fmt.Sprintf("state directory %s is locked by pid %d (%s) since %s",
		e.Dir, e.Holder.PID, e.Holder.Command, When(e.Holder.Since))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockError) Is(target error) bool { return target == ErrLocked }

// When shows a time as an operator reads it: the local time of day, with
// the date only when it is not today, which is then the interesting fact
// (a lock held since yesterday, a deadline tomorrow).
func When(t time.Time) string {
	t = t.Local()
	y, m, d := t.Date()
	ny, nm, nd := time.Now().Date()
	if y == ny && m == nm && d == nd {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02 15:04:05")
}

// Lock is a held state directory lock.
type Lock struct {
	f    *os.File
	path string
}

// Backoff bounds for polling a busy lock: flock has no timeout of its own, and
// a blocking flock could not be interrupted by the context.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = 200 * time.Millisecond
)

// Lock takes the exclusive lock on <dir>/lock, retrying until timeout has
// passed; a timeout of 0 tries once. When the lock stays busy it returns a
// [*LockError] naming the holder, which matches [ErrLocked]; when ctx ends
// first it returns ctx's error.
//
// The lock is a flock(2) on the open file, so the kernel releases it when the
// holder exits for any reason, SIGKILL included: there is no stale lock to
// clear by hand. The file is opened close-on-exec, so binaries the holder runs
// (iptables-restore) do not inherit and prolong it.
func (d *Dir) Lock(ctx context.Context, timeout time.Duration) (*Lock, error) {
	return d.lock(ctx, "lock", timeout)
}

// Hold takes the exclusive lock <dir>/NAME.lock once, without waiting, for
// a process to hold as long as it lives: while it does, [Dir.Held] says it
// is alive (the kernel releases the lock when the process ends, however it
// ends). It fails with a [*LockError] when another process holds it.
func (d *Dir) Hold(name string) (*Lock, error) {
	if err := plainName(name + ".lock"); err != nil {
		return nil, err
	}
	return d.lock(context.Background(), name+".lock", 0)
}

// Held reports whether a process holds <dir>/NAME.lock (see Hold).
func (d *Dir) Held(name string) bool {
	if plainName(name+".lock") != nil {
		return false
	}
	f, err := d.openFile(name+".lock", os.O_RDONLY)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// openFile opens the file name of the state directory, never through a
// link: a lock file that is one would have root truncate its target.
func (d *Dir) openFile(name string, flag int) (*os.File, error) {
	dir, err := d.openStateDir()
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return openIn(dir, name, flag, 0o600)
}

func (d *Dir) lock(ctx context.Context, name string, timeout time.Duration) (*Lock, error) {
	path := filepath.Join(d.path, name)
	f, err := d.openFile(name, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := FlockWait(ctx, f, timeout); err != nil {
		switch {
		case errors.Is(err, ErrLocked):
			holder := readHolder(f)
			f.Close()
			return nil, &LockError{Dir: d.path, Holder: holder}
		case ctx.Err() != nil && errors.Is(err, ctx.Err()):
			f.Close()
			return nil, fmt.Errorf("waiting for the lock on %s: %w", d.path, err)
		}
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := writeHolder(f); err != nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
		return nil, fmt.Errorf("writing lock holder to %s: %w", path, err)
	}
	return &Lock{f: f, path: path}, nil
}

// FlockWait takes an exclusive flock(2) on f, retrying with a growing
// backoff until timeout has passed (0 tries once) or ctx ends: flock has
// no timeout of its own, and a blocking one could not be interrupted. A
// lock still busy at the timeout is ErrLocked; ctx ending first, ctx's
// error. It is the wait of every lock svcnat takes (the state lock, the
// network namespace's), which name the holder themselves.
func FlockWait(ctx context.Context, f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	backoff := minBackoff
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ErrLocked
		}
		t := time.NewTimer(min(backoff, left))
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Unlock releases the lock. It clears the holder first so that a waiter never
// reads a holder that has already gone. Calling it again does nothing.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	f.Truncate(0) // best effort: the holder text is informational only
	errUn := unix.Flock(int(f.Fd()), unix.LOCK_UN)
	errClose := f.Close()
	if err := errors.Join(errUn, errClose); err != nil {
		return fmt.Errorf("unlocking state directory: %w", err)
	}
	return nil
}

func writeHolder(f *os.File) error {
	cmd := append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...)
	b, err := json.Marshal(Holder{PID: os.Getpid(), Command: strings.Join(cmd, " "), Since: time.Now()})
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err = f.WriteAt(append(b, '\n'), 0)
	return err
}

// readHolder returns nil rather than an error: the holder text only improves
// the message, and it may be half written at the moment we read it.
func readHolder(f *os.File) *Holder {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<16))
	if err != nil {
		return nil
	}
	var h Holder
	if json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return nil
	}
	return &h
}

// Drop releases a lock taken with Hold and removes its file: nothing
// waits for it.
func (l *Lock) Drop() error {
	if l == nil || l.f == nil {
		return nil
	}
	os.Remove(l.path)
	return l.Unlock()
}
