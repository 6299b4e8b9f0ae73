package state

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// untrusted checks that err refuses the state directory, naming path and
// giving a hint that says what to do.
func untrusted(t *testing.T, err error, path, reason, hint string) {
	t.Helper()
	var ue *UntrustedError
	if !errors.As(err, &ue) || ue.Path != path || !strings.Contains(err.Error(), reason) || !strings.Contains(ue.Hint(), hint) {
		t.Fatalf("err = %v (%#v), want an *UntrustedError about %s saying %q with a hint %q", err, ue, path, reason, hint)
	}
}

// A state directory another user could write to is refused, as sshd's
// StrictModes refuses such a home: root would read and write there what
// that user put.
func TestUntrustedStateDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "svcnat")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatalf("a 0700 directory of our own: %v", err)
	}
	for _, mode := range []os.FileMode{0o777, 0o770, 0o702, os.ModeSticky | 0o777} {
		os.Chmod(dir, mode)
		_, err := Open(dir)
		untrusted(t, err, dir, "writable by", "chmod 700 "+dir)
	}
	// A mode changed after Open is seen by the next operation.
	os.Chmod(dir, 0o700)
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	if _, err := d.Load(); err == nil {
		t.Fatal("Load in a directory that became world-writable succeeded")
	}
	os.Chmod(dir, 0o700)

	// A parent that others may write to, and that is not sticky: they could
	// rename the state directory and put their own in its place.
	os.Chmod(base, 0o777)
	_, err = Open(dir)
	untrusted(t, err, base, "writable by", "chmod go-w "+base)
	// ... nor is a new directory created under it.
	_, err = Open(filepath.Join(base, "new"))
	untrusted(t, err, base, "writable by", "chmod go-w "+base)
	if exists(filepath.Join(base, "new")) {
		t.Fatal("a state directory was created under an untrusted parent")
	}
	// Sticky, as /tmp is: only the owner of an entry may rename or remove
	// it, so a directory of our own in it is safe.
	os.Chmod(base, os.ModeSticky|0o777)
	if _, err := Open(dir); err != nil {
		t.Fatalf("under a sticky world-writable parent: %v", err)
	}
	os.Chmod(base, 0o700)
}

// The state directory itself is never a symbolic link; one in its path
// is followed only when it is owned by root (or the user svcnat runs as).
func TestStateDirSymlink(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	_, err := Open(link)
	untrusted(t, err, link, "is a symbolic link", "--state-dir "+real)
	if entries, _ := os.ReadDir(real); len(entries) != 0 {
		t.Fatalf("the link's target was written to: %v", entries)
	}
	// Through a link of our own in the middle of the path: fine.
	if err := os.Mkdir(filepath.Join(real, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := Open(filepath.Join(link, "sub"))
	if err != nil {
		t.Fatalf("through a symbolic link of our own: %v", err)
	}
	if _, err := d.Load(); err != nil {
		t.Fatal(err)
	}
}

// Only root or the user svcnat runs as may own the state directory, its
// parents, and the symbolic links on the way to it.
func TestStateDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	const other = 4242
	base := t.TempDir()
	dir := filepath.Join(base, "svcnat")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Lchown(dir, other, other)
	_, err := Open(dir)
	untrusted(t, err, dir, "owned by uid 4242", "chown root "+dir)
	os.Lchown(dir, 0, 0)

	os.Lchown(base, other, other)
	_, err = Open(dir)
	untrusted(t, err, base, "owned by uid 4242", "chown root "+base)
	os.Lchown(base, 0, 0)

	// A link another user made in a sticky directory (their /tmp/svcnat
	// pointing at a directory of root's) is not followed.
	sticky := filepath.Join(base, "tmp")
	if err := os.Mkdir(sticky, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(sticky, os.ModeSticky|0o777)
	link := filepath.Join(sticky, "link")
	if err := os.Symlink(base, link); err != nil {
		t.Fatal(err)
	}
	os.Lchown(link, other, other)
	_, err = Open(filepath.Join(link, "svcnat"))
	untrusted(t, err, link, "owned by uid 4242", "")
}

// A file of the state directory that is a symbolic link is never followed:
// whoever made it does not get root to truncate, write or read its target.
func TestStateFileSymlinks(t *testing.T) {
	d := openTemp(t)
	apply(t, d, 1)
	elsewhere := t.TempDir()
	victim := filepath.Join(elsewhere, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := func(name, target string) {
		t.Helper()
		p := filepath.Join(d.Path(), name)
		os.RemoveAll(p)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(p) })
	}
	unchanged := func() {
		t.Helper()
		if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
			t.Fatalf("the link's target changed: %q, %v", b, err)
		}
	}

	link("lock", victim)
	l, err := d.Lock(context.Background(), 0)
	if err == nil {
		l.Unlock()
		t.Fatal("Lock through a symbolic link succeeded")
	}
	if !strings.Contains(err.Error(), filepath.Join(d.Path(), "lock")) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Lock: %v, want the link named", err)
	}
	unchanged()
	os.Remove(filepath.Join(d.Path(), "lock"))

	// Links to files of the state directory itself are not followed either.
	link("watch-1.lock", filepath.Join(d.Path(), "state.json"))
	if _, err := d.Hold("watch-1"); err == nil {
		t.Fatal("Hold through a symbolic link succeeded")
	}
	if d.Held("watch-1") {
		t.Fatal("Held through a symbolic link")
	}
	load(t, d)

	// The generations directory moved elsewhere: nothing is written or
	// removed there.
	link("generations", elsewhere)
	if _, err := d.ReadGeneration(1, "ipv4"); err == nil {
		t.Fatal("ReadGeneration through a linked directory succeeded")
	}
	st := load(t, d)
	setNext(st, 2)
	if err := d.Commit(st, rulesFor(2)); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Commit through a linked generations directory: %v", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 1 {
		t.Fatalf("files written to or removed from the link's target: %v", entries)
	}
	unchanged()

	link("state.json", victim)
	if _, err := d.Load(); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Load through a symbolic link: %v", err)
	}
	if err := d.Save(&State{}); err != nil {
		t.Fatalf("Save replaces a link, it does not write through it: %v", err)
	}
	unchanged()
}

// Generation numbers in a state file that svcnat could not have written
// (the largest int64, whose next one overflows; a negative one) make the
// file corrupt: Load says so, naming it, rather than every later apply
// failing on a generation below 1.
func TestLoadRefusesImpossibleGenerations(t *testing.T) {
	d := openTemp(t)
	apply(t, d, 1)
	good := load(t, d)
	for name, spoil := range map[string]func(st *State){
		"largest":            func(st *State) { st.Generation = math.MaxInt64 },
		"negative":           func(st *State) { st.Generation = -3 },
		"negative recorded":  func(st *State) { st.Generations[0].Generation = -1 },
		"largest recorded":   func(st *State) { st.Generations[0].Generation = math.MaxInt64 },
		"after the current":  func(st *State) { st.Generations[0].Generation = 5 },
		"negative revert of": func(st *State) { st.Generations[0].RevertOf = -1 },
		"negative previous":  func(st *State) { st.Pending = &Pending{ID: "x", Previous: -1} },
		"negative pending":   func(st *State) { st.Pending = &Pending{ID: "x", Generation: -1} },
		"negative timeout":   func(st *State) { st.Pending = &Pending{ID: "x", Timeout: -1} },
		"negative undone":    func(st *State) { st.Undone = &Undone{Generation: -1} },
	} {
		st := *good
		st.Generations = append([]GenerationInfo(nil), good.Generations...)
		spoil(&st)
		if err := d.Save(&st); err != nil {
			t.Fatal(err)
		}
		_, err := d.Load()
		if err == nil || !strings.Contains(err.Error(), filepath.Join(d.Path(), "state.json")) || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("%s: Load = %v, want the file refused as corrupt", name, err)
		}
	}
	if err := WriteFileAtomic(d.statePath(), []byte(`{"version": -1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load(); err == nil || !strings.Contains(err.Error(), "corrupt: the version is -1") {
		t.Errorf("Load of version -1 = %v", err)
	}
	// The last generation there can be a next one of is fine; its next is
	// refused at the commit.
	st := *good
	st.Generations = nil
	st.Generation = math.MaxInt64 - 1
	if err := d.Save(&st); err != nil {
		t.Fatal(err)
	}
	st2 := load(t, d)
	st2.Generation++
	if err := d.Commit(st2, rulesFor(1)); err == nil {
		t.Fatal("Commit of generation MaxInt64 succeeded")
	}
}
