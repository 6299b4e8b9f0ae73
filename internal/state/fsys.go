package state

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The state directory's files are opened under the directory's descriptor
// (openat), never by a path walked again, and never through a symbolic
// link: O_NOFOLLOW on every name, and the directory itself opened with
// O_NOFOLLOW and checked (checkDir) each time. A link in the directory,
// whoever made it and wherever it points, is an error naming it. os.Root
// confines opens to a directory too, but follows the links that stay
// inside it; here no link is followed at all.

// errLink is the reason a name of the state directory that is a symbolic
// link is refused.
const errLink = "is a symbolic link; svcnat follows no link in its state directory"

// openFlags are added to every open: no link, no descriptor leaked to the
// iptables binaries svcnat runs, and no wait on a FIFO left in the
// directory (O_NONBLOCK, cleared once the file is known to be regular).
const openFlags = unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK

// pathErr is err of op on the state directory's name, with the full path:
// messages name the file, errors.Is(err, fs.ErrNotExist) still holds, and
// a link says it is one.
func pathErr(op, path string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) && isLink(path) {
		return fmt.Errorf("%s %s", path, errLink)
	}
	return &os.PathError{Op: op, Path: path, Err: err}
}

func isLink(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&os.ModeSymlink != 0
}

// openStateDir opens the state directory for the operations below, and
// refuses it when it has become a link or changed hands since Open.
func (d *Dir) openStateDir() (*os.File, error) {
	fd, err := unix.Open(d.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) && isLink(d.path) {
			if cerr := checkPath(d.path, false); cerr != nil {
				return nil, cerr // says what the link is
			}
		}
		return nil, pathErr("open", d.path, err)
	}
	f := os.NewFile(uintptr(fd), d.path)
	if err := checkOpenDir(d.path, f, true); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkOpenDir checks an open directory of the state directory as Open
// checked it.
func checkOpenDir(stateDir string, f *os.File, statedir bool) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return checkDir(stateDir, f.Name(), fi, statedir)
}

// openSub opens the subdirectory name of dir (generations),
// making it (0700) first when create is set and it is missing. A missing
// one without create gives an error matching fs.ErrNotExist.
func openSub(dir *os.File, name string, create bool) (*os.File, error) {
	p := filepath.Join(dir.Name(), name)
	if create {
		if err := unix.Mkdirat(int(dir.Fd()), name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, pathErr("mkdir", p, err)
		}
	}
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	if err := checkOpenDir(filepath.Dir(p), f, true); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openIn opens the regular file name in dir, without following a link.
func openIn(dir *os.File, name string, flag int, perm os.FileMode) (*os.File, error) {
	p := filepath.Join(dir.Name(), name)
	fd, err := unix.Openat(int(dir.Fd()), name, flag|openFlags, uint32(perm.Perm()))
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, pathErr("stat", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, pathErr("open", p, err)
	}
	return os.NewFile(uintptr(fd), p), nil
}

// readIn reads the regular file name in dir.
func readIn(dir *os.File, name string) ([]byte, error) {
	f, err := openIn(dir, name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// writeAtomicIn writes src to name in dir so that name holds either its
// old content or all of src, even across a crash or power loss: it writes
// a temporary file beside it, fsyncs it, renames it over name and fsyncs
// the directory so the rename itself is durable. The temporary file is
// created new (O_EXCL), and rename replaces a link named name rather than
// writing through it.
func writeAtomicIn(dir *os.File, name string, src io.WriterTo, perm os.FileMode) (err error) {
	p := filepath.Join(dir.Name(), name)
	f, tmp, err := createTemp(dir, name)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			unix.Unlinkat(int(dir.Fd()), tmp, 0)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	if _, err = src.WriteTo(w); err == nil {
		err = w.Flush()
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	// The file is made 0600 whatever the umask; set what was asked.
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", p, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err = unix.Renameat(int(dir.Fd()), tmp, int(dir.Fd()), name); err != nil {
		return fmt.Errorf("renaming into %s: %w", p, err)
	}
	if err = dir.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir.Name(), err)
	}
	return nil
}

// createTemp creates a new file tempPrefix+name+"-RANDOM" in dir, 0600.
func createTemp(dir *os.File, name string) (*os.File, string, error) {
	for try := 0; ; try++ {
		tmp := tempPrefix + name + "-" + strconv.FormatUint(rand.Uint64(), 36)
		f, err := openIn(dir, tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil || !errors.Is(err, syscall.EEXIST) || try == 100 {
			return f, tmp, err
		}
	}
}

// removeIn removes the file name of dir; unlink never follows a link.
func removeIn(dir *os.File, name string) error {
	if err := unix.Unlinkat(int(dir.Fd()), name, 0); err != nil {
		return pathErr("remove", filepath.Join(dir.Name(), name), err)
	}
	return nil
}

// removeDirIn removes the empty directory name of dir.
func removeDirIn(dir *os.File, name string) error {
	if err := unix.Unlinkat(int(dir.Fd()), name, unix.AT_REMOVEDIR); err != nil {
		return pathErr("remove", filepath.Join(dir.Name(), name), err)
	}
	return nil
}

// plainName refuses a file name that is not one name in the directory.
func plainName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("invalid state file name %q", name)
	}
	return nil
}

// ReadFile reads the file name (one name, no directory) of the state
// directory, such as a record another package keeps there. A missing file
// gives an error matching fs.ErrNotExist.
func (d *Dir) ReadFile(name string) ([]byte, error) {
	if err := plainName(name); err != nil {
		return nil, err
	}
	dir, err := d.openStateDir()
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return readIn(dir, name)
}

// WriteFile writes the file name of the state directory atomically (as
// WriteFileAtomic), readable by its owner only.
func (d *Dir) WriteFile(name string, data []byte) error {
	if err := plainName(name); err != nil {
		return err
	}
	dir, err := d.openStateDir()
	if err != nil {
		return err
	}
	defer dir.Close()
	return writeAtomicIn(dir, name, bytes.NewReader(data), 0o600)
}
