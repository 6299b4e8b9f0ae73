package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const rulesSuffix = ".rules"

// validFamily keeps family names to plain words, because they become part of
// file names.
func validFamily(fam string) bool {
	if fam == "" {
		return false
	}
	for _, r := range fam {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// fileName names <gen>.<fam>.rules, a file of the generations directory
// (and of the backups directory older svcnat wrote).
func fileName(gen int64, fam string) (string, error) {
	if !validFamily(fam) {
		return "", fmt.Errorf("invalid family %q: want lower-case letters and digits, such as ipv4", fam)
	}
	return fmt.Sprintf("%d.%s%s", gen, fam, rulesSuffix), nil
}

// filePath names <dir>/<kind>/<gen>.<fam>.rules.
func (d *Dir) filePath(kind string, gen int64, fam string) (string, error) {
	name, err := fileName(gen, fam)
	if err != nil {
		return "", err
	}
	return filepath.Join(d.path, kind, name), nil
}

// parseName reads <gen>.<fam>.rules back; ok is false for any other name.
func parseName(name string) (gen int64, fam string, ok bool) {
	rest, found := strings.CutSuffix(name, rulesSuffix)
	if !found {
		return 0, "", false
	}
	num, fam, found := strings.Cut(rest, ".")
	if !found || !validFamily(fam) {
		return 0, "", false
	}
	gen, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return gen, fam, true
}

// ReadGeneration returns the owned rules of one family after generation gen
// was applied. A missing file gives an error matching fs.ErrNotExist.
func (d *Dir) ReadGeneration(gen int64, fam string) ([]byte, error) {
	name, err := fileName(gen, fam)
	if err != nil {
		return nil, err
	}
	b, err := d.readSub("generations", name)
	if err != nil {
		return nil, fmt.Errorf("reading the rules of generation %d: %w", gen, err)
	}
	return b, nil
}

// readSub reads the file name of the subdirectory kind.
func (d *Dir) readSub(kind, name string) ([]byte, error) {
	dir, err := d.openStateDir()
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	sub, err := openSub(dir, kind, false)
	if errors.Is(err, fs.ErrNotExist) {
		// Name the file asked for: that is what is missing.
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(d.path, kind, name), Err: syscall.ENOENT}
	}
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	return readIn(sub, name)
}

// clean removes what st does not reference: temporary files left by a crash,
// pruned generations, and those of applies that never committed. It
// removes too the backups directory older svcnat wrote, with a backup of
// the live owned rules before each apply, which nothing read: the
// generations hold every committed state. Only files named like ours are
// touched; an operator's notes stay, and so does a directory holding them.
func (d *Dir) clean(dir *os.File, st *State) {
	keep := map[string]bool{}
	for _, g := range st.Generations {
		for _, fam := range g.Rules {
			name, _ := fileName(g.Generation, fam)
			keep["generations/"+name] = true
		}
	}
	for _, kind := range []string{"", "generations", "backups"} {
		sub := dir
		if kind != "" {
			var err error
			if sub, err = openSub(dir, kind, false); err != nil {
				continue
			}
			defer sub.Close()
		}
		entries, err := sub.ReadDir(-1)
		// ReadDir read sub's descriptor to its end; what follows uses it
		// only as the directory to unlink in.
		if err != nil {
			continue
		}
		removed, left := false, false
		for _, e := range entries {
			name := e.Name()
			_, _, ours := parseName(name)
			if isTemp(name) || (kind != "" && ours && !keep[kind+"/"+name]) {
				if removeIn(sub, name) == nil {
					removed = true
					continue
				}
			}
			left = true
		}
		if removed {
			sub.Sync()
		}
		if kind == "backups" && !left && removeDirIn(dir, kind) == nil {
			dir.Sync()
		}
	}
}
