package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch sends on the channel it returns when the configuration may have
// changed and file events have settled for Debounce. It watches the
// directory that holds the configured path, so that the path replaced —
// a directory renamed away and back, a symlink swapped to a new checkout
// (ln -s NEW tmp && mv -T tmp PATH) — is seen and followed, and the
// directory of the configuration's files (the path's target), as editors
// and git replace files rather than write them. When nothing can be
// watched, it says so: the ticks still read the configuration every
// interval, and watching is tried again until it works.
func (l *Loop) watch(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		l.Log.Warn("file events lost: watching the configuration failed; it is read every interval", "err", err)
		return out
	}
	path, err := filepath.Abs(l.Config)
	if err != nil {
		path = filepath.Clean(l.Config)
	}
	w := &watcher{l: l, fs: fw, path: path, parent: filepath.Dir(path), watched: map[string]uint64{}}
	retry := l.retry
	if retry == 0 {
		retry = min(l.Interval, 5*time.Second)
	}
	var again <-chan time.Time // ticks while watching is lost
	var ticker *time.Ticker
	lost := func(err error) {
		if err == nil || ticker != nil {
			return
		}
		l.Log.Warn("file events lost: watching the configuration failed; it is read every interval until watching works again",
			"config", w.path, "err", err)
		ticker = time.NewTicker(retry)
		again = ticker.C
	}
	lost(w.arm())
	go func() {
		defer fw.Close()
		defer func() {
			if ticker != nil {
				ticker.Stop()
			}
		}()
		var settle <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				if w.replaced(ev) {
					lost(w.arm())
				}
				if w.relevant(ev) {
					settle = time.After(l.Debounce)
				}
			case err, ok := <-fw.Errors:
				if !ok {
					return
				}
				if errors.Is(err, fsnotify.ErrEventOverflow) {
					// Some events are gone, but the watches stand: read now.
					l.Log.Warn("file events lost: too many at once; reading the configuration now", "err", err)
					settle = time.After(l.Debounce)
					continue
				}
				l.Log.Warn("watching the configuration", "err", err)
			case <-again:
				if w.arm() != nil {
					continue
				}
				ticker.Stop()
				ticker, again = nil, nil
				l.Log.Info("watching the configuration again", "config", w.path)
				settle = time.After(l.Debounce) // what changed meanwhile
			case <-settle:
				settle = nil
				select {
				case out <- struct{}{}:
				default: // a pass is already due
				}
			}
		}
	}()
	return out
}

// watcher is the state of the watches on the configuration: only the
// watch goroutine uses it.
type watcher struct {
	l  *Loop
	fs *fsnotify.Watcher
	// path is the configured path, absolute; parent the directory that
	// holds it.
	path, parent string
	// dir is the directory of the configuration's files (the path's
	// target, or the directory of the file it names), file that file when
	// the configuration is one; "" while the path is missing.
	dir, file string
	// watched maps each watched directory to its inode: a directory
	// replaced under the same name is watched again.
	watched map[string]uint64
}

// arm makes the watches what the path is now: its parent, and the
// directory of its files. The path missing is no failure (the parent
// sees it come back); the parent missing, or a symlink to nothing, is:
// no event would say that it is back.
func (w *watcher) arm() error {
	w.dir, w.file = "", ""
	want := map[string]uint64{}
	ino, err := inode(w.parent)
	if err != nil {
		return err
	}
	want[w.parent] = ino
	if _, err := os.Lstat(w.path); err == nil {
		real, err := filepath.EvalSymlinks(w.path)
		if err != nil {
			return fmt.Errorf("%s points to nothing: %w", w.path, err)
		}
		fi, err := os.Stat(real)
		if err != nil {
			return err
		}
		if w.dir = real; !fi.IsDir() {
			w.dir, w.file = filepath.Dir(real), real
		}
		if want[w.dir], err = inode(w.dir); err != nil {
			return err
		}
	}
	for p, ino := range w.watched {
		if want[p] != ino {
			w.fs.Remove(p) // gone already when the kernel ended it
			delete(w.watched, p)
		}
	}
	for p, ino := range want {
		// Adding again is harmless, and needed: fsnotify drops the watch
		// of a directory that was moved, even when it moves back.
		if err := w.fs.Add(p); err != nil {
			return err
		}
		w.watched[p] = ino
	}
	return nil
}

// replaced reports whether ev says that the path, or a watched directory
// itself, was created, removed, renamed or replaced: the watches must
// follow.
func (w *watcher) replaced(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Clean(ev.Name)
	if name == w.path {
		return true
	}
	_, self := w.watched[name]
	return self && ev.Op.Has(fsnotify.Remove|fsnotify.Rename)
}

// relevant reports whether ev may change the configuration: the path
// itself, a .hcl file in its directory (or, for one file, that file)
// written, created, removed or renamed.
func (w *watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Clean(ev.Name)
	switch {
	case name == w.path:
		return true
	case w.file != "":
		return name == w.file
	}
	return w.dir != "" && filepath.Dir(name) == w.dir && strings.HasSuffix(name, ".hcl")
}

func inode(dir string) (uint64, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino, nil
	}
	return 0, nil
}
