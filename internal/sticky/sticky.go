// Package sticky holds a writer whose first error sticks: it writes
// nothing after it and keeps it, so that code can print line by line and
// check once, at the end, whether everything arrived (a full disk, a
// closed pipe). It imports nothing of svcnat's.
package sticky

import "io"

// Writer writes to its writer until a write fails, then fails every
// write with that error. A short write without an error counts as
// io.ErrShortWrite.
type Writer struct {
	w   io.Writer
	err error
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (s *Writer) Write(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	s.err = err
	return n, err
}

// Err is the first error a write returned; nil when everything arrived.
func (s *Writer) Err() error { return s.err }

// Writer is the writer s writes to.
func (s *Writer) Writer() io.Writer { return s.w }
