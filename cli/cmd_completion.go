package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"
)

// Completion scripts for the shells urfave/cli does not write one for: they
// ask svcnat itself (--generate-bash-completion, which urfave/cli answers
// from the same command definitions as --help) for the commands and flags
// that can come next, so they never drift either.
const bashCompletion = `# bash completion for svcnat (svcnat completion bash)
_svcnat() {
	local cur="${COMP_WORDS[COMP_CWORD]}" opts
	if [[ "$cur" == -* ]]; then
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _svcnat svcnat
`

const zshCompletion = `#compdef svcnat
# zsh completion for svcnat (svcnat completion zsh)
_svcnat() {
	local -a opts
	local cur=${words[-1]}
	if [[ "$cur" == -* ]]; then
		opts=("${(@f)$(_CLI_ZSH_AUTOCOMPLETE_HACK=1 ${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
	else
		opts=("${(@f)$(_CLI_ZSH_AUTOCOMPLETE_HACK=1 ${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
	fi
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
				fmt.Fprint(c.App.Writer, s)
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
			s, err := c.App.ToManWithSection(8)
			if err != nil {
				return err
			}
			fmt.Fprint(c.App.Writer, s)
			return nil
		},
	}
}
