package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's migration example (Migrating between backends) is what
// apply --backend nftables prints for the walkthrough's configuration on
// a host whose rules are in iptables-nft: its headers, Plan lines,
// completion and removal lines, durations and the state directory aside.
func TestREADMEMigrationExample(t *testing.T) {
	h := newFakeHost(t)
	twoBackends(h)
	for _, f := range []string{"dns.hcl", "nginx.hcl", "settings.hcl"} {
		b, err := os.ReadFile(filepath.Join("../../examples", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, h.config, f, string(b))
	}
	h.must(ExitOK, "apply", "-auto-approve")
	h.terminal, h.stdin = true, strings.NewReader("yes\n")
	out := h.must(ExitOK, "apply", "--backend", "nftables")

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "$ svcnat apply --backend nftables\n")
	if !ok {
		t.Fatal("README has no apply --backend nftables example")
	}
	block, _, _ = strings.Cut(block, "```")
	took := regexp.MustCompile(`in [0-9.]+(µs|ms|s)`)
	norm := func(s string) string {
		return took.ReplaceAllString(strings.ReplaceAll(s, h.stateDir, "/var/lib/svcnat"), "in T")
	}
	out = norm(out)
	checked := 0
	for _, line := range strings.Split(block, "\n") {
		for _, p := range []string{"svcnat will perform", "Then svcnat will", "Plan: ", "Do you want", "Apply complete!", "Removed svcnat's"} {
			if strings.HasPrefix(line, p) {
				checked++
				if !strings.Contains(out, norm(line)+"\n") {
					t.Errorf("apply --backend nftables prints no line %q; it printed\n%s", line, out)
				}
			}
		}
	}
	if checked < 7 {
		t.Errorf("the README's example has %d of its headers, Plan, question, completion and removal lines; want 7", checked)
	}
}
