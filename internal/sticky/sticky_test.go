package sticky

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
)

// fullDisk takes room bytes, then fails every write as a full disk does.
type fullDisk struct {
	room int
	got  bytes.Buffer
}

func (d *fullDisk) Write(b []byte) (int, error) {
	if len(b) > d.room {
		n := d.room
		d.got.Write(b[:n])
		d.room = 0
		return n, syscall.ENOSPC
	}
	d.room -= len(b)
	return d.got.Write(b)
}

// The writer keeps the first error and writes nothing after it.
func TestWriterKeepsTheFirstError(t *testing.T) {
	d := &fullDisk{room: 3}
	w := NewWriter(d)
	if _, err := io.WriteString(w, "abcdef"); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("first write: %v", err)
	}
	d.room = 100
	if _, err := io.WriteString(w, "ghi"); !errors.Is(err, syscall.ENOSPC) || d.got.String() != "abc" || !errors.Is(w.Err(), syscall.ENOSPC) {
		t.Fatalf("after the error: %v, wrote %q", err, d.got.String())
	}
}

// shortWriter takes one byte less than it is given, and says nothing.
type shortWriter struct{}

func (shortWriter) Write(b []byte) (int, error) { return max(len(b)-1, 0), nil }

func TestShortWriteIsAnError(t *testing.T) {
	w := NewWriter(shortWriter{})
	if _, err := io.WriteString(w, "ab"); !errors.Is(err, io.ErrShortWrite) || !errors.Is(w.Err(), io.ErrShortWrite) {
		t.Fatalf("a short write: %v, kept %v", err, w.Err())
	}
}
