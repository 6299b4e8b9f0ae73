package cli

import (
	"errors"
	"fmt"
	"regexp"

	ucli "github.com/urfave/cli/v2"
)

// commandChanges says, of every command, whether it changes anything: the
// rules, the state directory, or files (fmt). urfave/cli's Command has no
// field for such a mark, so it is kept here, for every command: a command
// missing from it is a bug that readOnly reports at once (and a test
// before), rather than one that silently says "nothing was changed".
var commandChanges = map[string]bool{
	"apply": true, "rollback": true, "destroy": true, "revert": true, "confirm": true,
	"reconcile": true, "confirm-watch": true, "fmt": true,
	"validate": false, "render": false, "plan": false, "show": false, "trace": false, "graph": false,
	"history": false, "version": false, "completion": false, "man": false, "help": false,
}

// readOnly makes cmd, if it changes nothing (commandChanges), report
// errors without "; nothing was changed" (readOnlyMessage), which would
// suggest that something might have been: the engine's refusals (shared
// with apply, which plan reports as what apply would refuse) and its
// state errors carry those words for the commands that change rules.
func readOnly(cmd *ucli.Command) {
	changes, known := commandChanges[cmd.Name]
	if !known {
		panic(fmt.Sprintf("svcnat: commandChanges does not say whether command %s changes anything", cmd.Name))
	}
	action := cmd.Action
	if changes || action == nil {
		return
	}
	cmd.Action = func(c *ucli.Context) error { return readOnlyErr(action(c)) }
}

// readOnlyErr is err as a command that changes nothing reports it: its
// message without "; nothing was changed" (readOnlyMessage), with its
// hint and type. Only an error with those words is wrapped: the rest
// stay the very values others compare with (failedOutput's out.Err()).
func readOnlyErr(err error) error {
	if err == nil || readOnlyMessage(err.Error()) == err.Error() {
		return err
	}
	if ee := (*exitError)(nil); errors.As(err, &ee) && ee.err != nil {
		return exitWith(ee.code, &readOnlyError{ee.err}) // an invalid configuration's
	}
	return &readOnlyError{err}
}

// readOnlyError is an error of a command that changes nothing. It unwraps
// to the error itself, so hints and types are found as before.
type readOnlyError struct{ err error }

func (e *readOnlyError) Error() string { return readOnlyMessage(e.err.Error()) }

func (e *readOnlyError) Unwrap() error { return e.err }

// nothingChanged matches how the engine's and cli's errors say that a
// command that changes rules refused before it changed any: the clause
// "; nothing was changed" where it ends a sentence (the message, a line,
// or before the list after a colon), never within one ("…; nothing was
// changed, but …" says something else).
//
// A known compromise: this edits text. Typed errors without the clause,
// which the commands that change things would add, would not need it;
// they are dozens of errors across engine, state and cli.
var nothingChanged = regexp.MustCompile(`; nothing was changed(:|\n|$)`)

// readOnlyMessage is msg as a command that changes nothing says it: the
// one transform of its stderr and of its JSON documents' messages.
func readOnlyMessage(msg string) string { return nothingChanged.ReplaceAllString(msg, "$1") }
