package state

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// tempPrefix starts the name of every temporary file, so cleanup can tell a
// leftover of a crashed write from a real file.
const tempPrefix = ".tmp-"

// WriteFileAtomic writes data to path so that path holds either its old
// content or all of data, even across a crash or power loss: it writes a
// temporary file in the same directory, fsyncs it, renames it over path and
// fsyncs the directory so the rename itself is durable.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, bytes.NewReader(data), perm)
}

// WriteAtomic is WriteFileAtomic with the content written by src, so that
// a large file is written as it is made, never held whole in memory.
func WriteAtomic(path string, src io.WriterTo, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer d.Close()
	return writeAtomicIn(d, base, src, perm)
}

func isTemp(name string) bool { return strings.HasPrefix(name, tempPrefix) }
