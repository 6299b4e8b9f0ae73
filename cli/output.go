package cli

import (
	"errors"
	"fmt"
	"io"
)

// outputWriter is standard output as commands write it: it remembers the
// first error its writer returned (a full disk, a closed pipe) and writes
// nothing after it, so that a view can write freely and be checked once.
// Run fails a command whose output was lost, however the command ended:
// a plan or a report that did not arrive is never a silent success.
type outputWriter struct {
	w   io.Writer
	err error
}

func (o *outputWriter) Write(b []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	o.err = err
	return n, err
}

// outputErr returns the error that lost output written to w, when w is
// svcnat's standard output; nil when nothing was lost.
func outputErr(w io.Writer) error {
	if o, ok := w.(*outputWriter); ok {
		return o.err
	}
	return nil
}

// failedOutput is the error a command that ended with err reports when
// writing its output to out failed: the command's own error when it says
// more than the write's (it may say the same, in its words), else the
// failed write, with exit 1 even for a command that meant to exit 2 or 3.
func failedOutput(err error, out *outputWriter) error {
	if out.err == nil {
		return err
	}
	var ee *exitError
	if err == nil || err == out.err || errors.As(err, &ee) && ee.err == nil {
		return fmt.Errorf("writing to standard output: %w", out.err)
	}
	return err
}
