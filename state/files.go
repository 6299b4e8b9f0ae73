package state

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// filePath names <dir>/<kind>/<gen>.<fam>.rules.
func (d *Dir) filePath(kind string, gen int64, fam string) (string, error) {
	if !validFamily(fam) {
		return "", fmt.Errorf("invalid family %q: want lower-case letters and digits, such as ipv4", fam)
	}
	return filepath.Join(d.path, kind, fmt.Sprintf("%d.%s%s", gen, fam, rulesSuffix)), nil
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
	p, err := d.filePath("backups", gen, fam)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("creating backups directory: %w", err)
	}
	if err := WriteAtomic(p, data, 0o600); err != nil {
		return "", fmt.Errorf("saving backup: %w", err)
	}
	return p, nil
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
	p, err := d.filePath(kind, gen, fam)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("reading %s of generation %d: %w", strings.TrimSuffix(kind, "s"), gen, err)
	}
	return b, nil
}

// backupFamilies lists the families that have a backup for gen.
func (d *Dir) backupFamilies(gen int64) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(d.path, "backups"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing backups: %w", err)
	}
	var fams []string
	for _, e := range entries {
		if g, fam, ok := parseName(e.Name()); ok && g == gen {
			fams = append(fams, fam)
		}
	}
	return fams, nil // ReadDir sorts by name, so fams is sorted
}

// clean removes what st does not reference: temporary files left by a crash,
// pruned generations and backups, and those of applies that never committed.
// Only files named like ours are touched; an operator's notes stay.
func (d *Dir) clean(st *State) {
	keep := map[string]bool{}
	for _, g := range st.Generations {
		for _, fam := range g.Rules {
			p, _ := d.filePath("generations", g.Generation, fam)
			keep[p] = true
		}
		for _, fam := range g.Backups {
			p, _ := d.filePath("backups", g.Generation, fam)
			keep[p] = true
		}
	}
	for _, sub := range []string{"", "generations", "backups"} {
		dir := filepath.Join(d.path, sub)
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		removed := false
		for _, e := range entries {
			name := e.Name()
			p := filepath.Join(dir, name)
			_, _, ours := parseName(name)
			if isTemp(name) || (sub != "" && ours && !keep[p]) {
				removed = os.Remove(p) == nil || removed
			}
		}
		if removed {
			syncDir(dir)
		}
	}
}
