package integration

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// apply asks on a terminal and acts only on "yes". script(1) gives svcnat
// a pseudo-terminal, so the prompt is the one a person sees.
func TestApplyConfirmsOnATerminal(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("needs script(1) from bsdutils for a pseudo-terminal")
	}
	l := newApplyLab(t, "nft", applyBaseConfig)
	onTerminal := func(answer string) string {
		t.Helper()
		cmd := l.sv.Cmd("apply")
		line := strings.Join(append([]string{cmd.Path}, cmd.Args[1:]...), " ")
		sc := exec.Command("script", "-qec", line, "/dev/null")
		sc.Env = cmd.Env
		sc.Stdin = strings.NewReader(answer + "\n")
		out, _ := sc.CombinedOutput()
		return string(out)
	}
	out := onTerminal("no")
	if !strings.Contains(out, "Only 'yes' will be accepted") || !strings.Contains(out, "apply cancelled; nothing was changed") {
		t.Fatalf("%s apply answered \"no\" on a terminal:\n%s", l.where(), out)
	}
	if strings.Contains(applySave(t, l.ns, "nft", backend.IPv4), "SVCNAT-") {
		t.Fatalf("%s a cancelled apply wrote rules", l.where())
	}
	out = onTerminal("yes")
	if !strings.Contains(out, "Apply complete!") {
		t.Fatalf("%s apply answered \"yes\" on a terminal:\n%s", l.where(), out)
	}
	l.must(0, "plan", "--detailed-exitcode")
}
