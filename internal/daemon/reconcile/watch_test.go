package reconcile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/kernel/iptables"
)

// watchedLoop starts a loop that only file events can wake (an interval
// of an hour) on the configuration path config, which the caller made.
func watchedLoop(t *testing.T, config string) *loopHost {
	t.Helper()
	h := startLoopOn(t, t.TempDir(), config, iptables.NewFake(), time.Hour)
	h.logs.await(t, 0, "applied", "event=start", "generation=1")
	return h
}

func mkdir(t *testing.T, path string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(path, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// endpoint is web with its endpoint at address.
func endpoint(address string) string { return strings.Replace(web, "10.64.1.2", address, 1) }

// A configuration directory renamed away and back is watched again: an
// edit after it is applied at once, not an interval later.
func TestWatchFollowsARenamedDirectory(t *testing.T) {
	base := t.TempDir()
	active := filepath.Join(base, "active")
	mkdir(t, active, map[string]string{"web.hcl": web})
	h := watchedLoop(t, active)

	mustRename(t, active, active+".old")
	mustRename(t, active+".old", active)
	h.write(t, "web.hcl", endpoint("10.64.1.3"))
	h.logs.await(t, 0, "applied", "event=config changed", "generation=2")
	if !strings.Contains(h.owned(t), "10.64.1.3:80") {
		t.Fatalf("the edit was not applied:\n%s", h.owned(t))
	}
}

// A symlink swapped to another directory (ln -s NEW tmp && mv -T tmp
// LINK, as a box activates a new checkout) is followed: the new
// directory is applied, and edits in it are seen.
func TestWatchFollowsASwappedSymlink(t *testing.T) {
	base := t.TempDir()
	mkdir(t, filepath.Join(base, "v1"), map[string]string{"web.hcl": web})
	mkdir(t, filepath.Join(base, "v2"), map[string]string{"web.hcl": endpoint("10.64.1.3")})
	active := filepath.Join(base, "active")
	if err := os.Symlink("v1", active); err != nil {
		t.Fatal(err)
	}
	h := watchedLoop(t, active)

	if err := os.Symlink("v2", active+".new"); err != nil {
		t.Fatal(err)
	}
	mustRename(t, active+".new", active)
	at := h.logs.await(t, 0, "applied", "event=config changed", "generation=2")
	if !strings.Contains(h.owned(t), "10.64.1.3:80") {
		t.Fatalf("the new checkout was not applied:\n%s", h.owned(t))
	}
	// The new directory is watched.
	h.write(t, "web.hcl", endpoint("10.64.1.4"))
	h.logs.await(t, at, "applied", "event=config changed", "generation=3")
	if got := h.owned(t); !strings.Contains(got, "10.64.1.4:80") {
		t.Fatalf("the edit in the new checkout was not applied:\n%s", got)
	}
}

// A configuration file whose directory is swapped the same way is
// followed too.
func TestWatchFollowsAFileThroughASwappedSymlink(t *testing.T) {
	base := t.TempDir()
	mkdir(t, filepath.Join(base, "v1"), map[string]string{"web.hcl": web})
	mkdir(t, filepath.Join(base, "v2"), map[string]string{"web.hcl": endpoint("10.64.1.3")})
	if err := os.Symlink("v1/web.hcl", filepath.Join(base, "web.hcl")); err != nil {
		t.Fatal(err)
	}
	h := watchedLoop(t, filepath.Join(base, "web.hcl"))
	if err := os.Symlink("v2/web.hcl", filepath.Join(base, "web.hcl.new")); err != nil {
		t.Fatal(err)
	}
	mustRename(t, filepath.Join(base, "web.hcl.new"), filepath.Join(base, "web.hcl"))
	at := h.logs.await(t, 0, "applied", "event=config changed", "generation=2")
	if err := os.WriteFile(filepath.Join(base, "v2", "web.hcl"), []byte(endpoint("10.64.1.4")), 0o644); err != nil {
		t.Fatal(err)
	}
	h.logs.await(t, at, "applied", "event=config changed", "generation=3")
}

// When nothing is left to watch (the directory holding the configuration
// is gone), the loop says that it reads the configuration every interval
// from then on, and says so again when it watches once more.
func TestWatchLostAndFound(t *testing.T) {
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	active := filepath.Join(etc, "active")
	mkdir(t, active, map[string]string{"web.hcl": web})
	h := startLoopOn(t, t.TempDir(), active, iptables.NewFake(), time.Hour, func(l *Loop) { l.retry = 50 * time.Millisecond })
	at := h.logs.await(t, 0, "applied", "event=start", "generation=1")

	mustRename(t, etc, etc+".old")
	at = h.logs.await(t, at, "file events lost", "read every interval")
	mustRename(t, etc+".old", etc)
	at = h.logs.await(t, at, "watching the configuration again")
	h.write(t, "web.hcl", endpoint("10.64.1.3"))
	h.logs.await(t, at, "applied", "generation=2")
}

// A configuration file reached through a symlinked directory (the parent
// and the file's directory are one directory under two names) is watched
// once, and its edits are seen.
func TestWatchAFileThroughASymlinkedDirectory(t *testing.T) {
	base := t.TempDir()
	mkdir(t, filepath.Join(base, "real"), map[string]string{"web.hcl": web})
	if err := os.Symlink("real", filepath.Join(base, "etc")); err != nil {
		t.Fatal(err)
	}
	h := watchedLoop(t, filepath.Join(base, "etc", "web.hcl"))
	if err := os.WriteFile(filepath.Join(base, "real", "web.hcl"), []byte(endpoint("10.64.1.3")), 0o644); err != nil {
		t.Fatal(err)
	}
	h.logs.await(t, 0, "applied", "event=config changed", "generation=2")
}
