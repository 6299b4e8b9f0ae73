package cli

import (
	"strings"
	"testing"
)

// A command's flag given before the command name is not a typo of a
// global flag: the hint says where it goes.
func TestCommandFlagBeforeTheCommand(t *testing.T) {
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"--confirm-timeout", "60", "apply"}, "svcnat: error: flag provided but not defined: -confirm-timeout\n" +
			"svcnat: hint: --confirm-timeout is a flag of apply: give it after the command name (svcnat apply --confirm-timeout …)\n"},
		{[]string{"--out", "p.plan", "plan"}, "svcnat: error: flag provided but not defined: -out\n" +
			"svcnat: hint: --out is a flag of plan: give it after the command name (svcnat plan --out …)\n"},
		{[]string{"--auto-approve", "destroy"}, "svcnat: error: flag provided but not defined: -auto-approve\n" +
			"svcnat: hint: --auto-approve is a flag of destroy: give it after the command name (svcnat destroy --auto-approve …)\n"},
		{[]string{"--auto-approve"}, "svcnat: error: flag provided but not defined: -auto-approve\n" +
			"svcnat: hint: --auto-approve is a flag of apply, rollback and destroy: give it after the command name (svcnat apply --auto-approve …)\n"},
	} {
		out, errs, code := run(t, c.args...)
		refused(t, c.args, out, errs, code)
		if errs != c.stderr {
			t.Errorf("svcnat %s: stderr\n%s\nwant\n%s", strings.Join(c.args, " "), errs, c.stderr)
		}
	}
}
