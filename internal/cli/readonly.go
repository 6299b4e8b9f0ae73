package cli

import (
	"errors"
	"fmt"
	"regexp"

	ucli "github.com/urfave/cli/v2"
)

// commandTraits says, of every command, what it does that other code
// decides on: whether it changes anything (the rules, the state directory,
// or files: fmt), and what it makes of --json. urfave/cli's Command has no
// field for such marks, so they are kept here, for every command: a
// command missing from it is a bug NewApp reports at once (a test
// before), rather than one that silently says "nothing was changed" or
// prints text where a program expects JSON.
var commandTraits = map[string]commandTrait{
	"apply": {changes: true, json: jsonDocument}, "rollback": {changes: true, json: jsonDocument},
	"destroy": {changes: true, json: jsonDocument}, "revert": {changes: true, json: jsonDocument},
	"confirm":   {changes: true, json: jsonDocument},
	"reconcile": {changes: true, json: jsonRefused, jsonHint: "reconcile logs JSON lines with --log-format json"},
	"fmt":       {changes: true, json: jsonRefused, jsonHint: "fmt -check and -diff say what would change; validate --json reports the configuration's errors"},
	// The revert watcher is started by apply with its environment
	// (SVCNAT_JSON too); it logs, and must not refuse.
	"confirm-watch": {changes: true, json: jsonNone},
	"validate":      {json: jsonDocument}, "plan": {json: jsonDocument}, "show": {json: jsonDocument},
	"trace": {json: jsonDocument}, "history": {json: jsonDocument}, "version": {json: jsonDocument},
	"render":     {json: jsonRefused, jsonHint: "plan --json gives the rules as JSON (each change's after)"},
	"graph":      {json: jsonRefused, jsonHint: "graph prints Graphviz DOT or Mermaid (--format); plan --json gives the chains as JSON"},
	"man":        {json: jsonRefused, jsonHint: "man prints the manual page in roff"},
	"completion": {json: jsonRefused, jsonHint: "completion prints a shell script"},
	"help":       {json: jsonNone}, // takes no global flags
}

type commandTrait struct {
	changes  bool   // it changes the rules, the state directory or files
	json     int    // what it makes of --json: jsonDocument, jsonRefused or jsonNone
	jsonHint string // for jsonRefused: where JSON is to be had, or what to do
}

// What a command makes of --json.
const (
	jsonDocument = iota + 1 // one JSON document on stdout (README "…as JSON")
	jsonRefused             // refused as a usage error (noJSON): it prints only text
	jsonNone                // nothing: it takes no --json, or must not refuse it
)

// traitsOf is cmd's commandTraits.
func traitsOf(cmd *ucli.Command) commandTrait {
	t, known := commandTraits[cmd.Name]
	if !known {
		panic(fmt.Sprintf("svcnat: commandTraits does not describe command %s", cmd.Name))
	}
	return t
}

// readOnly makes cmd, if it changes nothing (commandTraits), report
// errors without "; nothing was changed" (readOnlyMessage), which would
// suggest that something might have been: the engine's refusals (shared
// with apply, which plan reports as what apply would refuse) and its
// state errors carry those words for the commands that change rules.
func readOnly(cmd *ucli.Command) {
	action := cmd.Action
	if traitsOf(cmd).changes || action == nil {
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
