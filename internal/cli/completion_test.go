package cli

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

// TestCompletionShim is svcnat for the completion scripts under test: run
// as the helper process (SVCNAT_COMPLETION_SHIM), it runs svcnat on the
// arguments after "--" and exits with its code.
func TestCompletionShim(t *testing.T) {
	if os.Getenv("SVCNAT_COMPLETION_SHIM") != "1" {
		t.Skip("the helper process of TestBashCompletion")
	}
	// As the svcnat binary sees them: urfave/cli reads some of them.
	os.Args = append([]string{"svcnat"}, flag.Args()...)
	os.Exit(Main(flag.Args(), os.Stdin, os.Stdout, os.Stderr))
}

// The bash completion script, driven as bash drives it, against svcnat.
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	shim := fmt.Sprintf("#!/bin/sh\nSVCNAT_COMPLETION_SHIM=1 exec %q -test.run='^TestCompletionShim$' -- \"$@\"\n", os.Args[0])
	if err := os.WriteFile(filepath.Join(dir, "svcnat"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	out, _, code := run(t, "completion", "bash")
	script := writeFile(t, dir, "svcnat.bash", out)
	if code != ExitOK {
		t.Fatal("svcnat completion bash failed")
	}
	// complete returns what bash offers for the last word, given the
	// words before it.
	complete := func(words ...string) string {
		t.Helper()
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = fmt.Sprintf("%q", w)
		}
		line := fmt.Sprintf(`source %q; COMP_WORDS=(svcnat %s); COMP_CWORD=%d; _svcnat; echo "${COMPREPLY[*]}"`,
			script, strings.Join(quoted, " "), len(words))
		cmd := exec.Command("bash", "-c", line)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion: %v\n%s", err, b)
		}
		return strings.TrimSpace(string(b))
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"ap"}, "apply"},
		{[]string{"conf"}, "confirm"}, // not the hidden confirm-watch
		{[]string{"completion", ""}, "bash zsh fish"},
		{[]string{"completion", "z"}, "zsh"},
		{[]string{"completion", "zsh", ""}, ""},
		{[]string{"help", "ap"}, "apply"},
		// After a boolean global flag comes a command.
		{[]string{"--no-color", "pl"}, "plan"},
		{[]string{"--json", "--no-color", "ve"}, "version"},
		{[]string{"--no-col"}, "--no-color"},
		// After a flag with a value, its value, then a command.
		{[]string{"--backend", ""}, "auto nftables iptables-nft iptables-legacy"},
		{[]string{"plan", "--backend", "iptables-l"}, "iptables-legacy"},
		{[]string{"-c", "examples", "va"}, "validate"},
		{[]string{"-c", ""}, ""}, // a file: bash's own completion
		{[]string{"trace", "--proto", ""}, "tcp udp sctp"},
		{[]string{"graph", "--format", ""}, "dot mermaid"},
		{[]string{"reconcile", "--log-format", "j"}, "json"},
		// A command's flags; one given is not offered again.
		{[]string{"apply", "--confirm-t"}, "--confirm-timeout"},
		{[]string{"fmt", "-rec"}, "-recursive"},
		{[]string{"plan", "--json", "--js"}, ""},
		{[]string{"apply", "--probe", "http://10.0.0.1:80/", "--pro"}, "--probe --probe-timeout"},
		// "--" as the word being completed, or before it: urfave/cli ran
		// the command then (confirm --<TAB> confirmed).
		{[]string{"confirm", "--"}, "--config --node --netns --state-dir --runtime-dir --iptables-save --backend --local-address --json --no-color --lock-timeout --help"},
		{[]string{"history", "-"}, "--config -c --node --netns --state-dir --runtime-dir --iptables-save --backend --local-address --json --no-color --help -h"},
		{[]string{"trace", "--", "x"}, ""},
		{[]string{"--"}, "--config --node --netns --state-dir --runtime-dir --iptables-save --backend --local-address --json --no-color --help --version"},
	} {
		if got := complete(c.words...); got != c.want {
			t.Errorf("svcnat %s<TAB>: %q, want %q", strings.Join(c.words, " "), got, c.want)
		}
	}
}

// The values completion offers are the ones the flags take.
func TestCompletionValues(t *testing.T) {
	app := NewApp(Env{})
	for name, values := range flagValues {
		found := false
		for _, c := range app.Commands {
			f := findFlag(c.Flags, name)
			if f == nil {
				continue
			}
			found = true
			usage := f.(ucli.DocGenerationFlag).GetUsage()
			for _, v := range values {
				if !strings.Contains(usage, v) {
					t.Errorf("%s --%s: usage %q does not name %q", c.Name, name, usage, v)
				}
			}
		}
		if !found {
			t.Errorf("no command has a flag --%s", name)
		}
	}
	h := newFakeHost(t)
	fish := h.must(ExitOK, "completion", "fish")
	for _, want := range []string{"complete -c svcnat -l backend -x -a 'auto nftables iptables-nft iptables-legacy'\n", "complete -c svcnat -n '__fish_seen_subcommand_from completion' -f -a 'bash zsh fish'\n"} {
		if !strings.Contains(fish, want) {
			t.Errorf("fish script lacks %q", want)
		}
	}
}

// Completion only answers: whatever the word being completed ("--", "-",
// a word after a "--" in the line), svcnat lists what may come next and
// never runs the command. urfave/cli turns its completion off when any
// argument is "--", so the command used to run with
// --generate-bash-completion as an argument: confirm confirmed.
func TestCompletionNeverRunsACommand(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	id := pendingID(t, h.must(ExitOK, "apply", "-auto-approve", "--confirm-timeout", "1h"))
	rulesBefore, opened, gen := h.rules(), len(h.opened), h.generation()
	// h.run gives --no-color, --node, --state-dir and -c: not offered again.
	common := "--netns\n--runtime-dir\n--iptables-save\n--backend\n--local-address\n--json\n"
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"confirm", "--"}, common + "--lock-timeout\n--help\n-h\n"},
		{[]string{"revert", "--"}, common + "--lock-timeout\n--help\n-h\n"},
		{[]string{"confirm", "-"}, common + "--lock-timeout\n--help\n-h\n"},
		{[]string{"confirm", "--", ""}, ""},
		{[]string{"confirm", "--", id[:2]}, ""},
		{[]string{"trace", "--", "x"}, ""},
		{[]string{"trace", "--", "--"}, ""},
		{[]string{"history", "--"}, common + "--help\n-h\n"},
		{[]string{"--"}, common + "--help\n-h\n--version\n-v\n"},
		{[]string{"--json", "--"}, "--netns\n--runtime-dir\n--iptables-save\n--backend\n--local-address\n--help\n-h\n--version\n-v\n"},
	} {
		args := append(append([]string{}, c.words...), completeFlag)
		out, errs, code := h.run(args...)
		if code != ExitOK || errs != "" || out != c.want {
			t.Errorf("svcnat %s<TAB>: exit %d, stdout %q, want %q\n%s", strings.Join(c.words, " "), code, out, c.want, errs)
		}
	}
	// Every command, asked for its flags: its flags, nothing run.
	for _, cmd := range NewApp(Env{}).Commands {
		for _, words := range [][]string{{cmd.Name, "--"}, {cmd.Name, "-"}, {cmd.Name, "x", "--", "y"}} {
			args := append(append([]string{}, words...), completeFlag)
			out, errs, code := h.run(args...)
			ok := code == ExitOK && errs == ""
			if words[len(words)-1] == "y" {
				ok = ok && out == "" // after "--": file names
			} else {
				ok = ok && strings.HasSuffix(out, "--help\n-h\n")
				if findFlag(cmd.Flags, "json") != nil {
					ok = ok && strings.HasPrefix(out, common)
				}
			}
			if !ok {
				t.Errorf("svcnat %s<TAB>: exit %d, stdout %q\n%s", strings.Join(words, " "), code, out, errs)
			}
		}
	}
	// fish completes from its script alone: it never asks svcnat.
	if fish := h.must(ExitOK, "completion", "fish"); strings.Contains(fish, "-a '(") || strings.Contains(fish, completeFlag) {
		t.Errorf("the fish script runs svcnat:\n%s", fish)
	}
	if h.rules() != rulesBefore || len(h.opened) != opened || h.generation() != gen {
		t.Fatalf("completion acted: host opened %d times more, generation %d, rules\n%s", len(h.opened)-opened, h.generation(), h.rules())
	}
	if out := h.must(ExitOK, "show"); !strings.Contains(out, "Pending: apply "+id) {
		t.Fatalf("the apply no longer awaits confirmation:\n%s", out)
	}
}
