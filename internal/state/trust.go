package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// A state directory is trusted as sshd's StrictModes trusts a home: svcnat
// runs as root and reads there the rules it applies and writes there files
// it truncates, replaces and removes, so no other user may be able to
// change what is in it. The directory and every directory above it must be
// owned by root or by the user svcnat runs as, and be writable by no one
// else, except that a parent may be world-writable when it is sticky (as
// /tmp is): there only an entry's owner may rename or remove it, and the
// next entry on the path is checked to be ours. The state directory itself
// is never a symbolic link; a link on the way to it is followed only when
// it is ours (as the kernel's protected_symlinks does in sticky
// directories). Files inside are opened without following links at all
// (see fsys.go), so the check does not depend on what is in the directory.

// UntrustedError refuses a state directory that another user could
// change: Path is the directory or link at fault (the state directory or
// one on the way to it), StateDir the state directory asked for.
type UntrustedError struct {
	StateDir string
	Path     string
	// Reason says what is wrong with Path ("is writable by group and
	// others (mode 0777)").
	Reason string
	hint   string
}

func (e *UntrustedError) Error() string {
	if e.Path == e.StateDir {
		return fmt.Sprintf("state directory %s %s; svcnat refuses a state directory another user could change", e.Path, e.Reason)
	}
	return fmt.Sprintf("state directory %s: %s %s; svcnat refuses a state directory another user could change", e.StateDir, e.Path, e.Reason)
}

// Hint says what makes the directory acceptable.
func (e *UntrustedError) Hint() string { return e.hint }

// maxLinks bounds the symbolic links followed on the way to a state
// directory, as the kernel's ELOOP does.
const maxLinks = 40

// trustedOwner reports whether uid may own the state directory and what
// leads to it: root, or the user svcnat runs as (tests, a user's own
// experiments).
func trustedOwner(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

// ownerName is how a hint names the user who should own a file.
func ownerName() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	return fmt.Sprint(os.Geteuid())
}

// checkDir refuses a directory of the state directory's path (statedir
// says whether it is the state directory itself, or one of its own
// subdirectories) that another user could change.
func checkDir(stateDir, path string, fi fs.FileInfo, statedir bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("state directory %s: cannot tell who owns %s", stateDir, path)
	}
	if !trustedOwner(st.Uid) {
		return &UntrustedError{StateDir: stateDir, Path: path, Reason: fmt.Sprintf("is owned by uid %d", st.Uid),
			hint: fmt.Sprintf("chown %s %s, or use a --state-dir that only root can change", ownerName(), path)}
	}
	mode := fi.Mode()
	if mode.Perm()&0o022 == 0 || (!statedir && mode&fs.ModeSticky != 0) {
		return nil
	}
	who := "group and others"
	switch {
	case mode.Perm()&0o020 == 0:
		who = "others"
	case mode.Perm()&0o002 == 0:
		who = "its group"
	}
	hint := "chmod 700 " + path
	if !statedir {
		hint = "chmod go-w " + path + ", or use a --state-dir whose parents only root can change"
	}
	return &UntrustedError{StateDir: stateDir, Path: path,
		Reason: fmt.Sprintf("is writable by %s (mode %04o)", who, modeBits(mode)), hint: hint}
}

// modeBits is mode as chmod writes it, sticky bit included.
func modeBits(mode fs.FileMode) uint32 {
	m := uint32(mode.Perm())
	if mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

// checkPath walks path from / and refuses it (an *UntrustedError) unless
// it is a trusted state directory. With create, the directories missing at
// its end are made (0700), each only once the one it goes in is trusted.
func checkPath(path string, create bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	fi, err := os.Lstat("/")
	if err != nil {
		return err
	}
	if err := checkDir(path, "/", fi, abs == "/"); err != nil {
		return err
	}
	todo := strings.Split(strings.TrimPrefix(abs, "/"), "/")
	cur, links := "/", 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur has no links: this is its parent
			continue
		}
		next, last := filepath.Join(cur, name), len(todo) == 0
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) && create {
			if err = os.Mkdir(next, 0o700); err == nil || errors.Is(err, fs.ErrExist) {
				fi, err = os.Lstat(next)
			}
		}
		if err != nil {
			return fmt.Errorf("state directory %s: %w", path, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(next)
			if err != nil {
				return fmt.Errorf("state directory %s: %w", path, err)
			}
			if last {
				real := target
				if !filepath.IsAbs(real) {
					real = filepath.Join(cur, real)
				}
				return &UntrustedError{StateDir: path, Path: next, Reason: "is a symbolic link (to " + target + ")",
					hint: "give the directory itself: --state-dir " + real}
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); !ok || !trustedOwner(st.Uid) {
				return &UntrustedError{StateDir: path, Path: next, Reason: fmt.Sprintf("is a symbolic link owned by uid %d", ownerOf(fi)),
					hint: "give a --state-dir whose path has no link another user made"}
			}
			if links++; links > maxLinks {
				return fmt.Errorf("state directory %s: too many levels of symbolic links", path)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if !fi.IsDir() {
			return fmt.Errorf("state directory %s: %s is not a directory", path, next)
		}
		if err := checkDir(path, next, fi, last); err != nil {
			return err
		}
		cur = next
	}
	return nil
}

func ownerOf(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return 0
}
