package cli

import (
	"errors"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// readOnlyCommands change no rules and no state, whatever happens: an
// error of theirs never says "nothing was changed", which would suggest
// that something might have been.
var readOnlyCommands = map[string]bool{"validate": true, "render": true, "plan": true, "show": true, "trace": true, "graph": true}

// readOnly makes cmd, if it is one of readOnlyCommands, report errors
// without the engine's "; nothing was changed": the engine's refusals
// (shared with apply, which plan reports as what apply would refuse) and
// its state errors carry those words for the commands that change rules.
func readOnly(cmd *ucli.Command) {
	action := cmd.Action
	if !readOnlyCommands[cmd.Name] || action == nil {
		return
	}
	cmd.Action = func(c *ucli.Context) error {
		err := action(c)
		// Only an error with those words is wrapped: the rest stay the
		// very values others compare with (failedOutput's out.Err()).
		if err == nil || !strings.Contains(err.Error(), nothingChanged) {
			return err
		}
		if ee := (*exitError)(nil); errors.As(err, &ee) && ee.err != nil {
			return exitWith(ee.code, &readOnlyError{ee.err}) // an invalid configuration's
		}
		return &readOnlyError{err}
	}
}

// readOnlyError is an error of a command that changes nothing. It unwraps
// to the error itself, so hints and types are found as before.
type readOnlyError struct{ err error }

// nothingChanged is how the engine's and cli's errors say that a command
// that changes rules refused before it changed any: always this clause.
const nothingChanged = "; nothing was changed"

func (e *readOnlyError) Error() string { return strings.ReplaceAll(e.err.Error(), nothingChanged, "") }

func (e *readOnlyError) Unwrap() error { return e.err }
