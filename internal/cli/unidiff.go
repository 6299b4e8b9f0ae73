package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/svcnat/svcnat/internal/linediff"
)

// writeUnifiedDiff writes the unified diff from before to after of the
// file name, its headers naming it as diffPath does, so that patch -p1
// (and git apply) applies it from the directory the name is relative to.
func writeUnifiedDiff(w io.Writer, name, before, after string) error {
	_, err := io.WriteString(w, linediff.Unified(strings.TrimPrefix(diffPath(name), "/"), before, after))
	return err
}

// diffPath is how a diff's headers name the file name: relative to the
// working directory when it is below it, however it was given
// (svcnat fmt -diff /etc/svcnat run in /etc/svcnat, or ../conf run in
// conf), so that patch -p1 applies the diff where it was made; else by
// its absolute path, which patch -p1 applies from / (patch refuses a
// name with "..").
func diffPath(name string) string {
	abs, err := filepath.Abs(name)
	if err != nil {
		return name
	}
	wd, err := os.Getwd()
	if err != nil {
		return abs
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && filepath.IsLocal(rel) {
		return rel
	}
	return abs
}
