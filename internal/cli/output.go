package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/svcnat/svcnat/internal/sticky"
)

// Standard output, as commands write it, is a sticky.Writer: it keeps the
// first error its writer returned (a full disk, a closed pipe) and writes
// nothing after it, so that a view can write freely and be checked once.
// Run fails a command whose output was lost, however the command ended:
// a plan or a report that did not arrive is never a silent success.

// outputErr returns the error that lost output written to w, when w is
// svcnat's standard output; nil when nothing was lost.
func outputErr(w io.Writer) error {
	if o, ok := w.(*sticky.Writer); ok {
		return o.Err()
	}
	return nil
}

// failedOutput is the error a command that ended with err reports when
// writing its output to out failed: the command's own error when it says
// more than the write's (it may say the same, in its words), else the
// failed write, with exit 1 even for a command that meant to exit 2 or 3.
func failedOutput(err error, out *sticky.Writer) error {
	if out.Err() == nil {
		return err
	}
	var ee *exitError
	if err == nil || err == out.Err() || errors.As(err, &ee) && ee.err == nil {
		return fmt.Errorf("writing to standard output: %w", out.Err())
	}
	return err
}
