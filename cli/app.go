// Package cli is svcnat's command line: flags, commands and output. It is
// the only package that prints or exits; it turns arguments into plain
// option structs, then calls config, render, planner, applier and state.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// Exit codes shared by every command.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitChanges = 2 // plan --detailed-exitcode: there are changes
	ExitFormat  = 3 // fmt -check: a file would change
)

// exitError carries an exit code through urfave/cli. A nil err means the
// command already said everything it had to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func exitWith(code int, err error) error { return &exitError{code: code, err: err} }

// hintError is an error with a line that tells the user what to do.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return &hintError{err: err, hint: hint} }

// Main runs svcnat with args (without the program name) and returns the
// process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := NewApp(stdin, stdout, stderr)
	err := app.Run(append([]string{"svcnat"}, args...))
	if err == nil {
		return ExitOK
	}
	code := ExitError
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
		err = ee.err
	}
	fmt.Fprintf(stderr, "svcnat: error: %s\n", strings.TrimSuffix(err.Error(), "\n"))
	var he *hintError
	if errors.As(err, &he) {
		fmt.Fprintf(stderr, "svcnat: hint: %s\n", he.hint)
	}
	return code
}

// NewApp builds the command tree. Global flags are accepted before or
// after the command name (`svcnat -c x plan` and `svcnat plan -c x`).
func NewApp(stdin io.Reader, stdout, stderr io.Writer) *ucli.App {
	app := &ucli.App{
		Name:      "svcnat",
		Usage:     "Kubernetes Service virtual IPs on plain Linux hosts, planned and applied like Terraform",
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     globalFlags(),
		// Errors are printed once, by Main, in svcnat's own format.
		ExitErrHandler:  func(*ucli.Context, error) {},
		HideHelpCommand: true,
		Commands: []*ucli.Command{
			validateCommand(),
			fmtCommand(),
			renderCommand(),
			planCommand(),
			applyCommand(),
			showCommand(),
			rollbackCommand(),
			destroyCommand(),
		},
	}
	for _, c := range app.Commands {
		c.Flags = append(globalFlags(), c.Flags...)
	}
	return app
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
