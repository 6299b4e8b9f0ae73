package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"
)

// Completion scripts for bash and zsh ask svcnat itself
// (--generate-bash-completion) what can come next, and svcnat answers
// from the same command definitions as --help (completeWords), so they
// never drift; Run answers before any command runs (complete), also for
// "svcnat confirm --<TAB>". They always pass the word being completed, empty or not:
// without it "svcnat --no-color <TAB>" (a flag given, a command next) and
// "svcnat --no-col<TAB>" (a flag being typed) ask the same question.
const bashCompletion = `# bash completion for svcnat (svcnat completion bash)
_svcnat() {
	local cur="${COMP_WORDS[COMP_CWORD]}" opts
	opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _svcnat svcnat
`

const zshCompletion = `#compdef svcnat
# zsh completion for svcnat (svcnat completion zsh)
_svcnat() {
	local -a opts
	local cur=${words[-1]}
	opts=("${(@f)$(${words[@]:0:#words[@]-1} "${cur}" --generate-bash-completion 2>/dev/null)}")
	if [[ "${opts[1]}" != "" ]]; then
		_describe 'values' opts
	else
		_files
	fi
}
compdef _svcnat svcnat
`

func completionCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: bash, zsh or fish (e.g. source <(svcnat completion bash))",
		ArgsUsage: "bash|zsh|fish",
		Before:    atMost(1, "shell"),
		Action: func(c *ucli.Context) error {
			switch sh := c.Args().First(); sh {
			case "bash":
				fmt.Fprint(c.App.Writer, bashCompletion)
			case "zsh":
				fmt.Fprint(c.App.Writer, zshCompletion)
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				fmt.Fprint(c.App.Writer, s+fishValues(c.App))
			default:
				return withHint(fmt.Errorf("no completion for shell %q", sh), "svcnat completion bash, zsh or fish")
			}
			return nil
		},
	}
}

// manCommand writes the man page, svcnat(8), from the command definitions
// (make man).
func manCommand() *ucli.Command {
	return &ucli.Command{
		Name:   "man",
		Hidden: true,
		Usage:  "print the svcnat(8) man page (roff)",
		Action: func(c *ucli.Context) error {
			fmt.Fprint(c.App.Writer, manPage(c.App))
			return nil
		},
	}
}
