package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	ucli "github.com/urfave/cli/v2"
)

// flagValues are the values a flag takes, for completion, by flag name.
// Flags not listed take files, names or numbers: the shell completes
// file names for them. TestCompletionValues keeps the lists to the flags'
// own usage.
var flagValues = map[string][]string{
	"backend":    {"auto", "nftables", "iptables-nft", "iptables-legacy"},
	"proto":      {"tcp", "udp", "sctp"},
	"origin":     {"external", "local"},
	"format":     {"dot", "mermaid"},
	"family":     familyKeys(),
	"log-format": {"text", "json"},
}

// familyKeys are the families' keys, the values of --family.
func familyKeys() []string {
	var out []string
	for _, f := range backend.Families {
		out = append(out, f.Key())
	}
	return out
}

// argValues are the arguments a command takes, for completion.
func argValues(app *ucli.App, cmd string) []string {
	switch cmd {
	case "completion":
		return []string{"bash", "zsh", "fish"}
	case "help":
		return commandNames(app)
	}
	return nil
}

func commandNames(app *ucli.App) []string {
	var names []string
	for _, c := range app.Commands {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	return names
}

// completeFlag, last on the command line, asks svcnat what may come next
// instead of running it (the completion scripts).
const completeFlag = "--generate-bash-completion"

// complete answers a completion request, words being the command line
// before completeFlag, with completeWords, one word a line. It is the
// only answer: urfave/cli's own completion is off (EnableBashCompletion),
// as it runs the command when any argument is "--" (svcnat confirm
// --<TAB> confirmed), reads os.Args rather than the arguments, takes a
// flag just given ("svcnat --no-color <TAB>") for one being typed, offers
// a command's subcommands where its arguments go (help, h after "svcnat
// completion") and never a flag's values. Nothing here runs a Before or
// an Action.
func complete(app *ucli.App, words []string) error {
	// Setup adds the flags app.Run would (--help to every command),
	// without running anything.
	app.Setup()
	var sb strings.Builder
	for _, w := range completeWords(app, words) {
		sb.WriteString(w + "\n")
	}
	_, err := io.WriteString(app.Writer, sb.String())
	return err
}

// completeWords returns what may stand in the last of words, the word
// being completed (empty when nothing of it is typed yet), after the
// others (the program name left out): a command, a flag of the command,
// a value of the flag before it, or an argument of the command. Nothing
// means a file name.
func completeWords(app *ucli.App, words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur := words[len(words)-1]
	var cmd *ucli.Command
	var valueOf ucli.Flag // the flag the next word is the value of
	args := 0
	for _, w := range words[:len(words)-1] {
		switch {
		case valueOf != nil:
			if w != "=" { // bash splits --flag=value at the =
				valueOf = nil
			}
		case w == "--":
			return nil // file names, not flags, from here on
		case strings.HasPrefix(w, "-") && w != "-":
			name, _, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
			if f := findFlag(flagsOf(app, cmd), name); f != nil && takesValue(f) && !hasValue {
				valueOf = f
			}
		case cmd == nil && app.Command(w) != nil:
			cmd = app.Command(w)
		default:
			args++
		}
	}
	switch {
	case valueOf != nil:
		return flagValues[valueOf.Names()[0]]
	case strings.HasPrefix(cur, "-"):
		return flagNames(flagsOf(app, cmd), words[:len(words)-1], cur)
	case cmd == nil:
		return commandNames(app)
	case args == 0:
		return argValues(app, cmd.Name)
	}
	return nil
}

func flagsOf(app *ucli.App, cmd *ucli.Command) []ucli.Flag {
	if cmd == nil {
		return app.Flags
	}
	// urfave/cli adds --help to a command when it runs it, which
	// completion never does.
	if !cmd.HideHelp && findFlag(cmd.Flags, ucli.HelpFlag.Names()[0]) == nil {
		return append(slices.Clip(cmd.Flags), ucli.HelpFlag)
	}
	return cmd.Flags
}

func findFlag(flags []ucli.Flag, name string) ucli.Flag {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

func takesValue(f ucli.Flag) bool {
	v, ok := f.(interface{ TakesValue() bool })
	return ok && v.TakesValue()
}

// flagNames lists the visible flags, leaving out those given already
// unless they repeat (--local-address, --probe). Long names take the
// dashes being typed: one (fmt -check, Terraform's habit) or two.
func flagNames(flags []ucli.Flag, given []string, cur string) []string {
	long := "--"
	if len(cur) > 1 && cur[1] != '-' {
		long = "-"
	}
	var out []string
	for _, f := range flags {
		if v, ok := f.(ucli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		if !repeatable(f) && slices.ContainsFunc(f.Names(), func(n string) bool {
			return slices.ContainsFunc(given, func(w string) bool {
				name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
				return strings.HasPrefix(w, "-") && name == n
			})
		}) {
			continue
		}
		for _, n := range f.Names() {
			if len(n) == 1 {
				out = append(out, "-"+n)
			} else {
				out = append(out, long+n)
			}
		}
	}
	return out
}

func repeatable(f ucli.Flag) bool {
	switch f.(type) {
	case *ucli.StringSliceFlag, cmdLineStringSlice, *ucli.IntSliceFlag:
		return true
	}
	return false
}

// fishValues adds the values of flags and the arguments of commands to
// urfave/cli's fish script, which knows the commands and flags only.
func fishValues(app *ucli.App) string {
	var sb strings.Builder
	sb.WriteString("\n# values of flags and arguments (svcnat's completion tables)\n")
	names := make([]string, 0, len(flagValues))
	for n := range flagValues {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&sb, "complete -c svcnat -l %s -x -a '%s'\n", n, strings.Join(flagValues[n], " "))
	}
	for _, c := range commandNames(app) {
		if vs := argValues(app, c); vs != nil {
			fmt.Fprintf(&sb, "complete -c svcnat -n '__fish_seen_subcommand_from %s' -f -a '%s'\n", c, strings.Join(vs, " "))
		}
	}
	return sb.String()
}
