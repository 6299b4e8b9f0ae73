package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svcnat/svcnat/internal/kernel/netns"
	"github.com/svcnat/svcnat/internal/state"
)

// One kernel, one svcnat: two state directories that write the rules of
// one network namespace at once interleave their transactions, and each
// rolls back what the other did. So every run that changes rules also
// holds a lock of the namespace, whatever its state directory, in the
// runtime directory (Host.RuntimeDir), and the namespace keeps a record
// of which state directory last wrote each prefix's chains there: another
// one is refused (*OwnerError) unless it adopts them.

// DefaultRuntimeDir is where OpenHost keeps the namespace locks and
// owner records: root's, and gone at a reboot, like the rules.
const DefaultRuntimeDir = "/run/svcnat"

// namespaceID names the network namespace the rules are in, whatever the
// path to it (/run/netns/NAME, a process's /proc/PID/ns/net), by
// netns.Identity: its cookie ("netns-c4096"), or, on kernels
// before 5.14, its nsfs device and inode ("netns-4-4026531840").
func (e *Engine) namespaceID() (string, error) {
	id, err := netnsIdentity(e.NetNS)
	if err != nil {
		return "", fmt.Errorf("identifying the network namespace: %w", err)
	}
	return "netns-" + id, nil
}

// netnsIdentity is netns.Identity (a var for tests).
var netnsIdentity = netns.Identity

// runtimeDir makes sure the runtime directory exists and is the
// caller's alone: a lock or owner record another user can replace
// decides nothing.
func (e *Engine) runtimeDir() error {
	if err := os.MkdirAll(e.RuntimeDir, 0o700); err != nil {
		return fmt.Errorf("creating the runtime directory: %w", err)
	}
	fi, err := os.Lstat(e.RuntimeDir)
	if err != nil {
		return fmt.Errorf("checking the runtime directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("runtime directory %s is not a directory of uid %d that only it can write; nothing was changed", e.RuntimeDir, os.Geteuid())
	}
	return nil
}

// namespaceLocked tells whether runs take the namespace lock: on a real
// kernel (OpenHost sets RuntimeDir), not on a dump, which nothing writes.
func (e *Engine) namespaceLocked() bool {
	return e.RuntimeDir != "" && e.Kernel != nil && !e.Kernel.ReadOnly()
}

// nsLock is a held namespace lock, and the namespace's identity as it was
// when the lock was taken: the run's owner record is that namespace's,
// read and written by this id, never identified again mid-run.
type nsLock struct {
	f  *os.File
	id string
}

func (l *nsLock) unlock() {
	l.f.Truncate(0) // the holder text is informational only
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
}

// nsHolder is what the holder of a namespace lock writes into it.
type nsHolder struct {
	state.Holder
	StateDir string `json:"state_dir"`
}

// NamespaceLockError is another svcnat changing the rules of the same
// network namespace, with any state directory, when the lock timeout ran
// out. It matches ErrLocked.
type NamespaceLockError struct {
	Holder *nsHolder // nil when it had not written itself in yet
}

func (e *NamespaceLockError) Error() string {
	if e.Holder == nil {
		return "this network namespace is locked by another svcnat"
	}
	return fmt.Sprintf("this network namespace is locked by pid %d (%s), state directory %s, since %s",
		e.Holder.PID, e.Holder.Command, e.Holder.StateDir, state.When(e.Holder.Since))
}

func (e *NamespaceLockError) Is(target error) bool { return target == ErrLocked }

// lockNamespace takes the namespace's lock, retrying until timeout (0
// tries once) or ctx ends, as the state lock does: a flock, which the
// kernel drops when the holder dies, however it dies.
func (e *Engine) lockNamespace(ctx context.Context, timeout time.Duration) (*nsLock, error) {
	if err := e.runtimeDir(); err != nil {
		return nil, err
	}
	id, err := e.namespaceID()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(e.RuntimeDir, id+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the network namespace's lock: %w", err)
	}
	if err := state.FlockWait(ctx, f, timeout); err != nil {
		f.Close()
		switch {
		case errors.Is(err, state.ErrLocked):
			return nil, &NamespaceLockError{Holder: readNSHolder(path)}
		case ctx.Err() != nil && errors.Is(err, ctx.Err()):
			return nil, fmt.Errorf("waiting for the network namespace's lock: %w", err)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	cmd := append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...)
	b, _ := json.Marshal(nsHolder{Holder: state.Holder{PID: os.Getpid(), Command: strings.Join(cmd, " "), Since: time.Now()}, StateDir: e.StateDir})
	f.Truncate(0)
	f.WriteAt(append(b, '\n'), 0) // best effort: it only names the holder
	return &nsLock{f: f, id: id}, nil
}

func readNSHolder(path string) *nsHolder {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var h nsHolder
	if json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return nil
	}
	return &h
}

// owners is a namespace's owner record: chain prefix → the state
// directory whose run last wrote its chains there.
type owners map[string]string

// ownersPath is the owner record of the namespace: the one the run's
// lock names (e.held), or, outside a run (ApplyRefusal), the namespace
// the name names now.
func (e *Engine) ownersPath() (string, error) {
	if e.held != nil {
		return filepath.Join(e.RuntimeDir, e.held.id+".owners.json"), nil
	}
	id, err := e.namespaceID()
	if err != nil {
		return "", err
	}
	return filepath.Join(e.RuntimeDir, id+".owners.json"), nil
}

// readOwners reads the namespace's owner record; none when there is
// none (a namespace svcnat never wrote since the boot).
func (e *Engine) readOwners() (owners, error) {
	path, err := e.ownersPath()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return owners{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading which state directory wrote this network namespace's rules: %w", err)
	}
	o := owners{}
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("reading which state directory wrote this network namespace's rules (%s): %w", path, err)
	}
	return o, nil
}

// ownerRefusal refuses the chains of prefix when another state directory
// wrote them last in this namespace (the caller found some live).
func (e *Engine) ownerRefusal(prefix string) error {
	if !e.namespaceLocked() {
		return nil
	}
	o, err := e.readOwners()
	if err != nil {
		return err
	}
	// A state directory that is gone records nothing: the chains are no
	// one's then, which the unrecorded-chains check refuses on its own.
	if other := o[prefix]; other != "" && !sameDir(other, e.StateDir) && state.Exists(other) {
		return &OwnerError{Prefix: prefix, Owner: other, StateDir: e.StateDir}
	}
	return nil
}

// noteOwner records, under the namespace lock, that this state directory
// wrote prefix's chains last (owned: it left some), or that it removed
// them (the record is dropped, if it was this state directory's).
func (e *Engine) noteOwner(prefix string, owned bool) error {
	if !e.namespaceLocked() {
		return nil
	}
	o, err := e.readOwners()
	if err != nil {
		return err
	}
	self, err := filepath.Abs(e.StateDir)
	if err != nil {
		return err
	}
	switch {
	case owned && o[prefix] == self:
		return nil
	case owned:
		o[prefix] = self
	case o[prefix] != "" && sameDir(o[prefix], self):
		delete(o, prefix)
	default:
		return nil
	}
	path, err := e.ownersPath()
	if err != nil {
		return err
	}
	if len(o) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("forgetting which state directory wrote this network namespace's rules: %w", err)
		}
		return nil
	}
	data, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	if err := state.WriteFileAtomic(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("recording which state directory wrote this network namespace's rules: %w", err)
	}
	return nil
}

// sameDir reports whether two paths name one state directory: the same
// absolute path, or the same directory by other paths (a symlink, a bind
// mount).
func sameDir(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	ab, err2 := filepath.Abs(b)
	if err1 == nil && err2 == nil && aa == ab {
		return true
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
