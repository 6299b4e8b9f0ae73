package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	ucli "github.com/urfave/cli/v2"
)

// A command's positional arguments are checked by its Before hook, which
// urfave/cli runs after the flags are parsed and before the Action: before
// anything is read, locked or changed. urfave/cli hands a command whatever
// follows its flags, so a command that did not look would validate "."
// when asked about web.hcl. NewApp gives noArgs to a command that declares
// no Before.

// noArgs is the Before of a command that takes no argument.
func noArgs(c *ucli.Context) error { return atMost(0, "")(c) }

// atMost returns the Before of a command that takes up to n arguments,
// what says what one is ("saved plan file").
func atMost(n int, what string) ucli.BeforeFunc {
	return func(c *ucli.Context) error {
		if c.NArg() <= n {
			return nil
		}
		return tooManyArgs(c, n, what, "")
	}
}

// tooManyArgs is the error for arguments past the n a command takes. As
// flags after an argument are arguments too (urfave/cli, like Go's flag
// package, stops at the first argument), it says where flags go when one
// looks like a flag; else hint, else where the command's usage is.
func tooManyArgs(c *ucli.Context, n int, what, hint string) error {
	args := c.Args().Slice()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	takes := "no arguments"
	if n > 0 {
		takes = "at most one " + what
	}
	err := fmt.Errorf("%s takes %s, got %s", c.Command.Name, takes, strings.Join(quoted, " "))
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			usage := c.Command.HelpName + " [flags]"
			if c.Command.ArgsUsage != "" {
				usage += " " + c.Command.ArgsUsage
			}
			return withHint(err, "put flags before arguments: "+usage)
		}
	}
	if hint == "" {
		hint = "svcnat help " + c.Command.Name + " shows its usage"
	}
	return withHint(err, hint)
}

// showArgs is show's Before: show PLANFILE (terraform show's saved plan)
// renders one saved plan.
func showArgs(c *ucli.Context) error {
	if c.NArg() <= 1 {
		return nil
	}
	return tooManyArgs(c, 1, "saved plan file", "show describes the live rules, or with one PLANFILE a saved plan")
}

// configArg is the Before of validate, render and plan: a FILE or DIR
// argument is the configuration, as -c gives it (terraform validate DIR).
// It beats SVCNAT_CONFIG, as a flag does; -c naming another one is refused.
func configArg(c *ucli.Context) error {
	if c.NArg() > 1 {
		return tooManyArgs(c, 1, "configuration FILE or DIR", "")
	}
	if c.NArg() == 0 {
		return nil
	}
	if err := sameConfig(c); err != nil {
		return err
	}
	return c.Set("config", c.Args().First())
}

// fmtArgs is fmt's Before: it formats its FILE and DIR arguments, else
// -c's; both at once must name the same one.
func fmtArgs(c *ucli.Context) error { return sameConfig(c) }

// sameConfig refuses -c given on the command line with arguments that name
// another configuration.
func sameConfig(c *ucli.Context) error {
	x := setIn(c, "config")
	if !x.IsSet("config") || c.NArg() == 0 {
		return nil
	}
	flag, args := x.String("config"), c.Args().Slice()
	if len(args) == 1 && samePath(args[0], flag) {
		return nil
	}
	what := "the argument"
	if len(args) > 1 {
		what += "s"
	}
	return withHint(fmt.Errorf("-c %s and %s %s name two configurations", flag, what, strings.Join(args, " ")),
		fmt.Sprintf("give it once: svcnat %s [flags] FILE|DIR, or -c FILE|DIR", c.Command.Name))
}

// samePath reports whether a and b name the same file or directory,
// however they are written ("." and its absolute path, a symlink and its
// target).
func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ia, errA := os.Stat(a)
	ib, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(ia, ib)
}

// liveOnly is the Before of the commands that change the rules or the
// state: they refuse --iptables-save at once, before the plan is shown,
// the lock taken or the state directory made (planning against a dump is
// plan's and trace's).
func liveOnly(c *ucli.Context) error {
	if setIn(c, "iptables-save").String("iptables-save") == "" {
		return nil
	}
	return withHint(fmt.Errorf("%s: %w; nothing was changed", c.Command.Name, backend.ErrReadOnly),
		"drop --iptables-save (and SVCNAT_IPTABLES_SAVE) to work on the live rules; svcnat plan --iptables-save plans against a dump")
}

// checks runs Before hooks in order, stopping at the first error.
func checks(fs ...ucli.BeforeFunc) ucli.BeforeFunc {
	return func(c *ucli.Context) error {
		for _, f := range fs {
			if err := f(c); err != nil {
				return err
			}
		}
		return nil
	}
}

// jsonApproval is the Before of apply, rollback and destroy: with --json
// nobody can be asked, so they need -auto-approve (apply: or a saved plan,
// reviewed when it was made). It refuses at once, before the live rules
// are read and a plan is written to stdout for nothing, as terraform
// apply -json does.
func jsonApproval(c *ucli.Context) error {
	if !setIn(c, "json").Bool("json") || c.Bool("auto-approve") || c.Command.Name == "apply" && c.NArg() > 0 {
		return nil
	}
	hint := "pass -auto-approve"
	if c.Command.Name == "apply" {
		hint += ", or apply a saved plan (svcnat plan -out FILE, then svcnat apply --json FILE)"
	}
	return withHint(fmt.Errorf("%s --json cannot ask for confirmation; nothing was changed", c.Command.Name), hint)
}

// noJSON makes a command that prints only text (commandTraits' jsonRefused)
// refuse --json (and SVCNAT_JSON, as liveOnly refuses
// SVCNAT_IPTABLES_SAVE) before it does anything, rather than print text
// where a program expects a JSON document.
func noJSON(cmd *ucli.Command) {
	t := traitsOf(cmd)
	if t.json != jsonRefused {
		return
	}
	before := cmd.Before
	cmd.Before = func(c *ucli.Context) error {
		if setIn(c, "json").Bool("json") {
			return withHint(fmt.Errorf("%s has no JSON output", c.Command.Name),
				t.jsonHint+"; drop --json (and SVCNAT_JSON)")
		}
		if before == nil {
			return nil
		}
		return before(c)
	}
}
