package cli

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"
	"github.com/xrash/smetrics"
)

// How svcnat answers a command line it cannot run: an unknown command, an
// unknown flag, a bad flag value, a missing flag. urfave/cli's own answers
// print the whole help on stdout (so `plan --jsn > plan.json` wrote help
// into the file) or "No help topic"; svcnat says what is wrong on stderr,
// with a did-you-mean when a name is close, prints nothing on stdout and
// exits 1. Help that was asked for (svcnat help [COMMAND], --help) goes to
// stdout.

// helpCommand is svcnat help [COMMAND]. It stands in for urfave/cli's,
// which answers an unknown command with "No help topic" (and, hidden as it
// was, answered svcnat help itself so).
func helpCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "help",
		Usage:     "list the commands, or show how to use one",
		ArgsUsage: "[COMMAND]",
		Before:    atMost(1, "command"),
		Action: func(c *ucli.Context) error {
			if !c.Args().Present() {
				return ucli.ShowAppHelp(c)
			}
			name := c.Args().First()
			if c.App.Command(name) == nil {
				return unknownCommand(c, name)
			}
			return ucli.ShowCommandHelp(c, name)
		},
	}
}

// rootAction is what svcnat does without a command it knows: without any,
// it shows the help; else it says the command is unknown.
func rootAction(c *ucli.Context) error {
	if !c.Args().Present() {
		return ucli.ShowAppHelp(c)
	}
	return unknownCommand(c, c.Args().First())
}

func unknownCommand(c *ucli.Context, name string) error {
	var names []string
	for _, cmd := range c.App.VisibleCommands() {
		names = append(names, cmd.Names()...)
	}
	err := fmt.Errorf("unknown command %q", name)
	if s := didYouMean(name, names); s != "" {
		return withHint(err, fmt.Sprintf("did you mean %q?", s))
	}
	return withHint(err, "svcnat help lists the commands")
}

// didYouMean is the name closest to typed, by urfave/cli's measure (its
// Jaro-Winkler parameters), if it is close enough to be what was meant:
// past 0.8, "aply" and "apply" (0.95) or "jsn" and "json" (0.93) are, and
// "status" and "trace" (0.58) are not.
func didYouMean(typed string, names []string) string {
	best, score := "", 0.8
	for _, n := range names {
		if s := smetrics.JaroWinkler(n, typed, 0.7, 4); s > score {
			best, score = n, s
		}
	}
	return best
}

// The errors of Go's flag package (for the command line) and urfave/cli's
// (for a value from the environment) that usageError rewords. This is the
// one place that reads their text.
var (
	undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -(.+)$`)
	invalidValue  = regexp.MustCompile(`^invalid (?:boolean )?value (".*") for (?:flag )?-([^:]+): (.*)$`)
	invalidEnvVar = regexp.MustCompile(`^could not parse (".*") as (\w+) value from environment variable "([^"]+)" for flag [^:]+: (.*)$`)
)

const durationFormat = "e.g. 60s or 5m"

// usageError is every command's OnUsageError: the flags did not parse.
func usageError(c *ucli.Context, err error, isCommand bool) error {
	lists := "svcnat help lists the global flags"
	if isCommand {
		lists = "svcnat help " + c.Command.Name + " lists its flags"
	}
	msg := err.Error()
	if m := undefinedFlag.FindStringSubmatch(msg); m != nil {
		if hint := givenBeforeItsCommand(c, m[1]); hint != "" && !isCommand {
			return withHint(err, hint)
		}
		var names []string // the command's flags, --help among them
		for _, f := range c.Command.Flags {
			names = append(names, f.Names()...)
		}
		if s := didYouMean(m[1], names); s != "" {
			return withHint(err, fmt.Sprintf("did you mean %q?", dashed(s)))
		}
		return withHint(err, lists)
	}
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		value, _ := strconv.Unquote(m[1])
		kind := ""
		for _, f := range c.Command.Flags {
			for _, n := range f.Names() {
				if n == m[2] {
					kind = flagKind(f)
				}
			}
		}
		return badValue(value, dashed(m[2]), kind, m[3])
	}
	if m := invalidEnvVar.FindStringSubmatch(msg); m != nil {
		value, _ := strconv.Unquote(m[1])
		return badValue(value, m[3], m[2], m[4])
	}
	return withHint(err, lists)
}

// givenBeforeItsCommand is the hint for name, a flag svcnat does not take
// before the command name, when it is some command's own: it goes after
// that command's name (svcnat apply --confirm-timeout 60s, not svcnat
// --confirm-timeout 60s apply). "" when no command has it.
func givenBeforeItsCommand(c *ucli.Context, name string) string {
	var owners []string
	for _, cmd := range c.App.VisibleCommands() {
		for _, f := range cmd.Flags {
			if slices.Contains(f.Names(), name) {
				owners = append(owners, cmd.Name)
				break
			}
		}
	}
	if len(owners) == 0 {
		return ""
	}
	// The command on the line, when it has the flag, is the one meant.
	args, _ := c.App.Metadata[argsKey].([]string)
	for _, a := range args {
		if slices.Contains(owners, a) {
			owners = []string{a}
			break
		}
	}
	of := owners[0]
	if n := len(owners); n > 1 {
		of = strings.Join(owners[:n-1], ", ") + " and " + owners[n-1]
	}
	return fmt.Sprintf("%s is a flag of %s: give it after the command name (svcnat %s %s …)", dashed(name), of, owners[0], dashed(name))
}

// badValue says why value is no value for a flag (or environment
// variable) of kind, where Go's own reason reads poorly.
func badValue(value, of, kind, reason string) error {
	var hint string
	switch kind {
	case "duration":
		if _, err := time.ParseDuration(value); err != nil {
			if _, err := strconv.ParseFloat(value, 64); err == nil {
				reason = "a duration needs a unit, " + durationFormat
			} else {
				reason, hint = "not a duration", "a duration is a number with a unit, "+durationFormat
			}
		}
	case "int", "int64", "uint", "uint64":
		reason = "not a whole number"
	case "bool":
		reason, hint = "not a boolean", "use true or false"
	}
	err := fmt.Errorf("invalid value %q for %s: %s", value, of, reason)
	if hint != "" {
		return withHint(err, hint)
	}
	return err
}

// flagKind names a flag's type as urfave/cli's messages about the
// environment do.
func flagKind(f ucli.Flag) string {
	switch f.(type) {
	case *ucli.DurationFlag:
		return "duration"
	case *ucli.IntFlag, *ucli.Int64Flag, *ucli.UintFlag, *ucli.Uint64Flag:
		return "int"
	case *ucli.BoolFlag, cmdLineBool:
		return "bool"
	}
	return ""
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// requireFlags checks cmd's required flags in its Before hook, after its
// own: urfave/cli answers a missing one with the command's help on stdout,
// so svcnat takes the flags' Required off and says which is missing.
func requireFlags(cmd *ucli.Command) {
	var names []string
	for _, f := range cmd.Flags {
		switch f := f.(type) {
		case *ucli.StringFlag:
			if f.Required {
				f.Required, names = false, append(names, f.Name)
				f.Usage += " (required)" // for --help and the man page
			}
		case *ucli.IntFlag:
			if f.Required {
				f.Required, names = false, append(names, f.Name)
				f.Usage += " (required)"
			}
		default:
			if r, ok := f.(ucli.RequiredFlag); ok && r.IsRequired() {
				panic(fmt.Sprintf("required flag %T of %s: teach requireFlags about it", f, cmd.Name))
			}
		}
	}
	if len(names) == 0 {
		return
	}
	own := cmd.Before
	cmd.Before = func(c *ucli.Context) error {
		if own != nil {
			if err := own(c); err != nil {
				return err
			}
		}
		for _, n := range names {
			if !c.IsSet(n) {
				return withHint(fmt.Errorf("%s needs --%s", cmd.Name, n), "svcnat help "+cmd.Name+" lists its flags")
			}
		}
		return nil
	}
}

// prepared gives cmd what every command has: the global flags, svcnat's
// answers to bad usage, and an argument check (noArgs unless it has its
// own Before).
func prepared(cmd *ucli.Command) *ucli.Command {
	if cmd.Name != "help" {
		cmd.Flags = append(globalFlags(), cmd.Flags...)
	}
	if cmd.Before == nil {
		cmd.Before = noArgs
	}
	requireFlags(cmd)
	cmd.OnUsageError = usageError
	// A command's help shows its flags, not a "help" subcommand: svcnat
	// help COMMAND and svcnat COMMAND --help are the ways to ask.
	cmd.HideHelpCommand = true
	return cmd
}
