// Package cli is svcnat's command line: flags, commands and output. It is
// the only package that prints or exits. A command reads its flags into
// plain option structs, calls the engine (or config and render, for the
// commands that need no host), and hands what comes back to a view.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/svcnat/svcnat/internal/buildinfo"
	"github.com/svcnat/svcnat/internal/detach"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/sticky"
)

const (
	envKey        = "svcnat-env"
	versionErrKey = "svcnat-version-error"
	argsKey       = "svcnat-args" // the command line, for usageError
)

// envOf returns the Env the app was built with.
func envOf(c *ucli.Context) Env { return c.App.Metadata[envKey].(Env) }

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
func (e *hintError) Hint() string  { return e.hint }

// hinter is an error that says what to do about it, such as
// state.UntrustedError: every command prints its hint.
type hinter interface {
	error
	Hint() string
}

func withHint(err error, hint string) error { return &hintError{err: err, hint: hint} }

// Env is what svcnat runs with: its streams, and how it reaches the host
// whose rules it reads and writes.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// OpenHost opens the host (engine.OpenHost); tests give a fake one.
	OpenHost func(engine.HostOptions) (*engine.Host, error)
	// Terminal reports whether a stream (Stdin, Stdout, Stderr) is a
	// terminal (isTerminal); tests pretend.
	Terminal func(stream any) bool
	// Detach starts a process that outlives svcnat (detach.Start): the
	// watcher of apply --confirm-timeout. Tests run it in-process.
	Detach func(name string, argv []string, logPath string) (string, error)
}

func (e Env) terminal(stream any) bool {
	if e.Terminal != nil {
		return e.Terminal(stream)
	}
	return isTerminal(stream)
}

// Main runs svcnat with args (without the program name) on the real host
// and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// A write to a closed pipe (svcnat plan | head -1) is an error svcnat
	// reports, exit 1 (see failedOutput), not the end of the program: Go
	// ends a program with SIGPIPE when a write to its standard output or
	// error fails with EPIPE, unless SIGPIPE is notified or ignored.
	// Notified, not ignored: an ignored signal stays ignored in the
	// programs svcnat runs (iptables-restore, the revert watcher). The
	// channel is never read; signal drops what does not fit.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	return Run(Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, OpenHost: engine.OpenHost}, args)
}

// Run runs svcnat in env with args (without the program name) and returns
// the process exit code.
func Run(env Env, args []string) int {
	stderr := env.Stderr
	out := sticky.NewWriter(env.Stdout)
	env.Stdout = out
	app := NewApp(env)
	app.Metadata[argsKey] = args
	var err error
	if n := len(args); n > 0 && args[n-1] == completeFlag {
		// Answered here, never by app.Run: urfave/cli runs the command
		// when any argument is "--" (svcnat confirm --<TAB>).
		err = complete(app, args[:n-1])
	} else {
		err = app.Run(append([]string{"svcnat"}, args...))
	}
	if verr, ok := app.Metadata[versionErrKey].(error); ok && err == nil {
		err = verr // svcnat --version failed
	}
	err = failedOutput(err, out)
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
	if he := hinter(nil); errors.As(err, &he) && he.Hint() != "" {
		fmt.Fprintf(stderr, "svcnat: hint: %s\n", he.Hint())
	}
	return code
}

// NewApp builds the command tree. Global flags are accepted before or
// after the command name (`svcnat -c x plan` and `svcnat plan -c x`).
func NewApp(env Env) *ucli.App {
	if env.OpenHost == nil {
		env.OpenHost = engine.OpenHost
	}
	if env.Detach == nil {
		env.Detach = detach.Start
	}
	app := &ucli.App{
		Name:      "svcnat",
		Usage:     "Kubernetes Service virtual IPs on plain Linux hosts, planned and applied like Terraform",
		Reader:    env.Stdin,
		Writer:    env.Stdout,
		ErrWriter: env.Stderr,
		Metadata:  map[string]any{envKey: env},
		// svcnat's own help command (usage.go) stands in for urfave/cli's,
		// which takes --help with it: it is added back here.
		Flags:  append(globalFlags(), ucli.HelpFlag),
		Action: rootAction,
		// Errors are printed once, by Main, in svcnat's own format; bad
		// usage too, instead of the help on stdout.
		ExitErrHandler:       func(*ucli.Context, error) {},
		OnUsageError:         usageError,
		HideHelpCommand:      true,
		Version:              buildinfo.Read().Version,
		EnableBashCompletion: false, // Run answers it (complete.go)
		Commands: []*ucli.Command{
			validateCommand(),
			fmtCommand(),
			renderCommand(),
			planCommand(),
			applyCommand(),
			showCommand(),
			traceCommand(),
			graphCommand(),
			reconcileCommand(),
			confirmCommand(),
			revertCommand(),
			rollbackCommand(),
			historyCommand(),
			destroyCommand(),
			versionCommand(),
			completionCommand(),
			manCommand(),
			watchCommand(),
			helpCommand(),
		},
	}
	for _, c := range app.Commands {
		prepared(c)
		readOnly(c)
		noJSON(c)
	}
	// --version says what svcnat version does; urfave/cli's printer is
	// one global, so it is set here rather than per app. It returns no
	// error: Run finds it in the app's metadata.
	ucli.VersionPrinter = func(c *ucli.Context) {
		if err := printVersion(c); err != nil {
			c.App.Metadata[versionErrKey] = err
		}
	}
	return app
}

// isTerminal reports whether stream is a terminal: a file the terminal
// ioctl answers on. (/dev/null, which a cron job or systemd gives as
// standard input, is a character device too, but no terminal.)
func isTerminal(stream any) bool {
	if o, ok := stream.(*sticky.Writer); ok {
		stream = o.Writer()
	}
	f, ok := stream.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
