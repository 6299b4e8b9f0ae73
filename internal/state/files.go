package state

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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

// fileName names <gen>.<fam>.rules, a file of the generations or backups
// directory.
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

// SaveBackup saves the live owned rules of one family as they were before
// generation gen is applied, and returns the file's path. Call it before
// changing anything; the backup becomes part of the state when gen is
// committed, and is removed by a later Commit if gen never is.
func (d *Dir) SaveBackup(gen int64, fam string, data io.WriterTo) (string, error) {
	name, err := fileName(gen, fam)
	if err != nil {
		return "", err
	}
	dir, err := d.openStateDir()
	if err != nil {
		return "", err
	}
	defer dir.Close()
	sub, err := openSub(dir, "backups", true)
	if err != nil {
		return "", fmt.Errorf("creating backups directory: %w", err)
	}
	defer sub.Close()
	if err := writeAtomicIn(sub, name, data, 0o600); err != nil {
		return "", fmt.Errorf("saving backup: %w", err)
	}
	return filepath.Join(sub.Name(), name), nil
}

// ReadBackup returns the backup saved before generation gen was applied. A
// missing backup gives an error matching fs.ErrNotExist.
func (d *Dir) ReadBackup(gen int64, fam string) ([]byte, error) {
	return d.read("backups", gen, fam)
}

// ReadGeneration returns the owned rules of one family after generation gen
// was applied. A missing file gives an error matching fs.ErrNotExist.
func (d *Dir) ReadGeneration(gen int64, fam string) ([]byte, error) {
	return d.read("generations", gen, fam)
}

func (d *Dir) read(kind string, gen int64, fam string) ([]byte, error) {
	name, err := fileName(gen, fam)
	if err != nil {
		return nil, err
	}
	b, err := d.readSub(kind, name)
	if err != nil {
		what := "the rules"
		if kind == "backups" {
			what = "the backup"
		}
		return nil, fmt.Errorf("reading %s of generation %d: %w", what, gen, err)
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

// backupFamilies lists the families that have a backup for gen.
func (d *Dir) backupFamilies(dir *os.File, gen int64) ([]string, error) {
	sub, err := openSub(dir, "backups", false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing backups: %w", err)
	}
	defer sub.Close()
	entries, err := sub.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("listing backups: %w", err)
	}
	var fams []string
	for _, e := range entries {
		if g, fam, ok := parseName(e.Name()); ok && g == gen {
			fams = append(fams, fam)
		}
	}
	slices.Sort(fams)
	return fams, nil
}

// clean removes what st does not reference: temporary files left by a crash,
// pruned generations and backups, and those of applies that never committed.
// Only files named like ours are touched; an operator's notes stay.
func (d *Dir) clean(dir *os.File, st *State) {
	keep := map[string]bool{}
	for _, g := range st.Generations {
		for _, fam := range g.Rules {
			name, _ := fileName(g.Generation, fam)
			keep["generations/"+name] = true
		}
		for _, fam := range g.Backups {
			name, _ := fileName(g.Generation, fam)
			keep["backups/"+name] = true
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
		removed := false
		for _, e := range entries {
			name := e.Name()
			_, _, ours := parseName(name)
			if isTemp(name) || (kind != "" && ours && !keep[kind+"/"+name]) {
				removed = removeIn(sub, name) == nil || removed
			}
		}
		if removed {
			sub.Sync()
		}
	}
}
