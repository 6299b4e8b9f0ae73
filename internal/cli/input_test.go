package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"
)

// What svcnat does with the command line itself: arguments, unknown
// commands and flags, help, and which of a flag and its environment
// variable wins. An error says so on stderr, with nothing on stdout (where
// a plan or a JSON report would go), and exits 1.

// refused asserts that svcnat refused a command line as bad input.
func refused(t *testing.T, args []string, out, errs string, code int, want ...string) {
	t.Helper()
	if code != ExitError || out != "" {
		t.Errorf("svcnat %s: exit %d, want 1 with nothing on stdout\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	for _, w := range want {
		if !strings.Contains(errs, w) {
			t.Errorf("svcnat %s: stderr lacks %q:\n%s", strings.Join(args, " "), w, errs)
		}
	}
}

const invalidService = `service "default/web" {
  cluster_ips = ["10.32.0.300"]
  port {
    port = 80
  }
}
`

// A FILE or DIR argument of validate, render and plan is the
// configuration, as -c gives it; it is never ignored.
func TestConfigArgument(t *testing.T) {
	dir := t.TempDir()
	web := writeFile(t, dir, "web.hcl", invalidService)
	good := t.TempDir()
	writeFile(t, good, "nginx.hcl", nginx)
	dump := writeFile(t, t.TempDir(), "dump", "")

	// The invalid file is what is validated, not the current directory.
	for _, args := range [][]string{
		{"validate", web},
		{"render", "--node", "n1", web},
		{"plan", "--node", "n1", "--iptables-save", dump, web},
	} {
		out, errs, code := run(t, args...)
		if code != ExitError || !strings.Contains(errs, "web.hcl:2") {
			t.Errorf("svcnat %s: exit %d, want 1 naming web.hcl:2\n%s%s", strings.Join(args, " "), code, out, errs)
		}
	}
	if out, errs, code := run(t, "validate", good); code != ExitOK || !strings.Contains(out, "1 service in "+good) {
		t.Errorf("validate DIR: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := run(t, "render", "--node", "n1", good); code != ExitOK || !strings.Contains(out, "10.32.0.61") {
		t.Errorf("render DIR: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := run(t, "plan", "--node", "n1", "--iptables-save", dump, "--no-color", good); code != ExitOK || !strings.Contains(out, "+ service default/nginx") {
		t.Errorf("plan DIR: exit %d\n%s%s", code, out, errs)
	}
	// -c naming the same configuration is no conflict; another one is.
	if out, errs, code := run(t, "-c", good+"/", "validate", good); code != ExitOK {
		t.Errorf("-c DIR validate DIR: exit %d\n%s%s", code, out, errs)
	}
	// Written another way (a symlink, or "." where -c is absolute), it is
	// still the same one.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := run(t, "-c", good, "validate", link); code != ExitOK {
		t.Errorf("-c DIR validate LINK-TO-DIR: exit %d\n%s%s", code, out, errs)
	}
	for _, args := range [][]string{
		{"-c", good, "validate", web},
		{"validate", "-c", good, web},
		{"fmt", "-c", good, web},
	} {
		out, errs, code := run(t, args...)
		refused(t, args, out, errs, code, "svcnat: error: -c "+good+" and the argument "+web+" name two configurations", "svcnat: hint: ")
	}
	// An argument is the command line: it beats SVCNAT_CONFIG.
	t.Setenv("SVCNAT_CONFIG", good)
	if out, errs, code := run(t, "validate", web); code != ExitError || !strings.Contains(errs, "web.hcl:2") {
		t.Errorf("validate FILE with SVCNAT_CONFIG set: exit %d\n%s%s", code, out, errs)
	}
	// Flags after an argument are arguments: say where they go.
	args := []string{"validate", good, "--json"}
	out, errs, code := run(t, args...)
	refused(t, args, out, errs, code, `validate takes at most one configuration FILE or DIR, got "`+good+`" "--json"`,
		"svcnat: hint: put flags before arguments: svcnat validate [flags] [FILE|DIR]")
}

// A command refuses the arguments it does not take, before it reads or
// changes anything.
func TestExtraArgumentsAreRefused(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve")
	before, gen := h.rules(), h.generation()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"show", "a.plan", "b.plan"}, `show takes at most one saved plan file, got "a.plan" "b.plan"`},
		{[]string{"rollback", "-auto-approve", "x"}, `rollback takes no arguments, got "x"`},
		{[]string{"destroy", "-auto-approve", "x"}, `destroy takes no arguments, got "x"`},
		{[]string{"reconcile", "x"}, `reconcile takes no arguments, got "x"`},
		{[]string{"trace", "--src", "10.0.0.1", "--dst", "10.32.0.61", "--dport", "80", "x"}, `trace takes no arguments, got "x"`},
		{[]string{"graph", "x"}, `graph takes no arguments, got "x"`},
		{[]string{"version", "x"}, `version takes no arguments, got "x"`},
		{[]string{"apply", "-auto-approve", "a.plan", "b.plan"}, `apply takes at most one saved plan file, got "a.plan" "b.plan"`},
		{[]string{"confirm", "a", "b"}, `confirm takes at most one apply ID, got "a" "b"`},
		{[]string{"revert", "a", "b"}, `revert takes at most one apply ID, got "a" "b"`},
		{[]string{"completion", "bash", "zsh"}, `completion takes at most one shell, got "bash" "zsh"`},
		{[]string{"render", "a", "b"}, `render takes at most one configuration FILE or DIR, got "a" "b"`},
		{[]string{"plan", "a", "b"}, `plan takes at most one configuration FILE or DIR, got "a" "b"`},
		{[]string{"help", "apply", "plan"}, `help takes at most one command, got "apply" "plan"`},
	} {
		opened := len(h.opened)
		out, errs, code := h.run(c.args...)
		refused(t, c.args, out, errs, code, "svcnat: error: "+c.want)
		if len(h.opened) != opened {
			t.Errorf("svcnat %s opened the host", strings.Join(c.args, " "))
		}
	}
	if h.rules() != before || h.generation() != gen {
		t.Fatal("a refused command changed the rules or the state")
	}
	// Every command a user can call refuses an argument too many, also
	// those added later: none may ignore one.
	for _, cmd := range NewApp(Env{}).Commands {
		args := []string{cmd.Name, "x", "x", "x"}
		if cmd.Name == "fmt" { // takes any number of files
			continue
		}
		if cmd.Name == "confirm-watch" {
			args = []string{cmd.Name, "--id", "1", "x"}
		}
		out, errs, code := h.run(args...)
		refused(t, args, out, errs, code, "svcnat: error: "+cmd.Name+" takes ")
	}
}

// Commands that change rules or the state refuse --iptables-save at once:
// before reading anything, taking the lock or creating the state directory.
func TestDumpIsRefusedByCommandsThatChange(t *testing.T) {
	h := newFakeHost(t)
	dump := writeFile(t, t.TempDir(), "dump", "")
	for _, cmd := range [][]string{{"apply", "-auto-approve"}, {"rollback", "-auto-approve"}, {"destroy", "-auto-approve"},
		{"confirm"}, {"revert"}, {"reconcile"}} {
		for _, viaEnv := range []bool{false, true} {
			stateDir := filepath.Join(t.TempDir(), "state")
			args := append([]string{"--state-dir", stateDir}, cmd...)
			if viaEnv {
				t.Setenv("SVCNAT_IPTABLES_SAVE", dump)
			} else {
				args = append(args, "--iptables-save", dump)
			}
			out, errs, code := h.run(args...)
			os.Unsetenv("SVCNAT_IPTABLES_SAVE")
			refused(t, args, out, errs, code, "svcnat: error: "+cmd[0]+": cannot change a saved dump; nothing was changed",
				"svcnat: hint: drop --iptables-save")
			if _, err := os.Stat(stateDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("svcnat %s created the state directory (%v)", strings.Join(args, " "), err)
			}
		}
	}
	if len(h.opened) != 0 {
		t.Errorf("the host was opened %d times", len(h.opened))
	}
	// With the state directory there, no lock file either.
	args := []string{"apply", "-auto-approve", "--iptables-save", dump}
	out, errs, code := h.run(args...)
	refused(t, args, out, errs, code)
	if ents, _ := os.ReadDir(h.stateDir); len(ents) != 0 {
		t.Errorf("apply --iptables-save left %v in the state directory", ents)
	}
	// What only reads works on a dump.
	h.must(ExitOK, "plan", "--iptables-save", dump)
}

// help and --help print help on stdout and exit 0.
func TestHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "COMMANDS:"},
		{[]string{"--help"}, "COMMANDS:"},
		{nil, "COMMANDS:"},
		{[]string{"help", "apply"}, "svcnat apply - plan, confirm, commit atomically"},
		{[]string{"apply", "--help"}, "svcnat apply - plan, confirm, commit atomically"},
		{[]string{"help", "help"}, "svcnat help - "},
	} {
		out, errs, code := run(t, c.args...)
		if code != ExitOK || errs != "" || !strings.Contains(out, c.want) {
			t.Errorf("svcnat %s: exit %d, stdout lacks %q\n%s%s", strings.Join(c.args, " "), code, c.want, out, errs)
		}
		if strings.Contains(out, "confirm-watch") {
			t.Errorf("svcnat %s shows the hidden confirm-watch", strings.Join(c.args, " "))
		}
	}
	// A command's help names its arguments and no subcommands.
	out, _, _ := run(t, "help", "apply")
	if !strings.Contains(out, "svcnat apply [command options] [PLANFILE]") || strings.Contains(out, "COMMANDS:") {
		t.Errorf("help apply:\n%s", out)
	}
}

// An unknown command or flag is an error on stderr, with a did-you-mean
// when a name is close; nothing goes to stdout.
func TestUnknownCommandsAndFlags(t *testing.T) {
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"aply"}, "svcnat: error: unknown command \"aply\"\nsvcnat: hint: did you mean \"apply\"?\n"},
		{[]string{"aply", "--json"}, "svcnat: error: unknown command \"aply\"\nsvcnat: hint: did you mean \"apply\"?\n"},
		{[]string{"help", "aply"}, "svcnat: error: unknown command \"aply\"\nsvcnat: hint: did you mean \"apply\"?\n"},
		{[]string{"destory"}, "svcnat: error: unknown command \"destory\"\nsvcnat: hint: did you mean \"destroy\"?\n"},
		{[]string{"status"}, "svcnat: error: unknown command \"status\"\nsvcnat: hint: svcnat help lists the commands\n"},
		{[]string{"plan", "--jsn"}, "svcnat: error: flag provided but not defined: -jsn\nsvcnat: hint: did you mean \"--json\"?\n"},
		{[]string{"--jsn", "plan"}, "svcnat: error: flag provided but not defined: -jsn\nsvcnat: hint: did you mean \"--json\"?\n"},
		{[]string{"apply", "--auto-aprove"}, "svcnat: error: flag provided but not defined: -auto-aprove\nsvcnat: hint: did you mean \"--auto-approve\"?\n"},
		{[]string{"plan", "--dry-run"}, "svcnat: error: flag provided but not defined: -dry-run\nsvcnat: hint: svcnat help plan lists its flags\n"},
		{[]string{"plan", "-c"}, "svcnat: error: flag needs an argument: -c\nsvcnat: hint: svcnat help plan lists its flags\n"},
		{[]string{"trace", "--dst", "10.32.0.61", "--dport", "80"}, "svcnat: error: trace needs --src\nsvcnat: hint: svcnat help trace lists its flags\n"},
		{[]string{"trace", "--src", "10.0.0.1", "--dst", "10.32.0.61", "--dport", "http"},
			"svcnat: error: invalid value \"http\" for --dport: not a whole number\n"},
	} {
		out, errs, code := run(t, c.args...)
		refused(t, c.args, out, errs, code)
		if errs != c.stderr {
			t.Errorf("svcnat %s: stderr\n%s\nwant\n%s", strings.Join(c.args, " "), errs, c.stderr)
		}
	}
}

// A duration needs a unit: "60" is refused with what to write instead.
func TestDurationWithoutUnit(t *testing.T) {
	for _, c := range [][]string{
		{"apply", "--confirm-timeout", "60"},
		{"apply", "--probe-timeout", "5"},
		{"apply", "--lock-timeout", "10"},
		{"rollback", "--lock-timeout", "10"},
		{"confirm", "--lock-timeout", "10"},
		{"reconcile", "--interval", "30"},
	} {
		out, errs, code := run(t, c...)
		refused(t, c, out, errs, code)
		want := "svcnat: error: invalid value \"" + c[2] + "\" for " + c[1] + ": a duration needs a unit, e.g. 60s or 5m\n"
		if errs != want {
			t.Errorf("svcnat %s: stderr\n%s\nwant\n%s", strings.Join(c, " "), errs, want)
		}
	}
	args := []string{"apply", "--confirm-timeout", "soon"}
	out, errs, code := run(t, args...)
	refused(t, args, out, errs, code, `svcnat: error: invalid value "soon" for --confirm-timeout: not a duration`, "svcnat: hint: a duration is a number with a unit, e.g. 60s or 5m")
	// The same from the environment, named.
	t.Setenv("SVCNAT_CONFIRM_TIMEOUT", "60")
	args = []string{"apply"}
	out, errs, code = run(t, args...)
	refused(t, args, out, errs, code, "svcnat: error: invalid value \"60\" for SVCNAT_CONFIRM_TIMEOUT: a duration needs a unit, e.g. 60s or 5m\n")
}

// globalsOf returns the Globals a command sees with args, through the same
// flag definitions and precedence as every command.
func globalsOf(t *testing.T, args ...string) Globals {
	t.Helper()
	var g Globals
	app := NewApp(Env{})
	app.Commands = append(app.Commands, prepared(&ucli.Command{Name: "globals", Before: noArgs, Action: func(c *ucli.Context) error {
		var err error
		g, err = readGlobals(c)
		return err
	}}))
	if err := app.Run(append([]string{"svcnat"}, args...)); err != nil {
		t.Fatalf("svcnat %s: %v", strings.Join(args, " "), err)
	}
	return g
}

// A flag wins over its environment variable wherever it stands, before or
// after the command name; the variable gives the value when no flag does.
func TestFlagBeatsEnvironment(t *testing.T) {
	for _, c := range []struct {
		flag, env, fromEnv, fromFlag string
		got                          func(Globals) string
	}{
		{"--config", "SVCNAT_CONFIG", "env.hcl", "flag.hcl", func(g Globals) string { return g.Config }},
		{"--node", "SVCNAT_NODE", "env-node", "flag-node", func(g Globals) string { return g.Node }},
		{"--netns", "SVCNAT_NETNS", "env-ns", "flag-ns", func(g Globals) string { return g.NetNS }},
		{"--state-dir", "SVCNAT_STATE_DIR", "/env/state", "/flag/state", func(g Globals) string { return g.StateDir }},
		{"--iptables-save", "SVCNAT_IPTABLES_SAVE", "env.dump", "flag.dump", func(g Globals) string { return g.SaveFile }},
		{"--backend", "SVCNAT_BACKEND", "iptables-legacy", "iptables-nft", func(g Globals) string { return g.Backend }},
		{"--local-address", "SVCNAT_LOCAL_ADDRESS", "10.0.0.1", "10.0.0.2", func(g Globals) string {
			s := ""
			for _, a := range g.LocalAddresses {
				s += a.String()
			}
			return s
		}},
		{"--json", "SVCNAT_JSON", "true", "false", func(g Globals) string { return map[bool]string{true: "true", false: "false"}[g.JSON] }},
		{"--no-color", "SVCNAT_NO_COLOR", "true", "false", func(g Globals) string { return map[bool]string{true: "true", false: "false"}[g.noColor] }},
	} {
		t.Run(c.flag, func(t *testing.T) {
			t.Setenv(c.env, c.fromEnv)
			if got := c.got(globalsOf(t, "globals")); got != c.fromEnv {
				t.Errorf("%s=%s alone: %q", c.env, c.fromEnv, got)
			}
			flag := c.flag + "=" + c.fromFlag
			for _, args := range [][]string{{flag, "globals"}, {"globals", flag}} {
				if got := c.got(globalsOf(t, args...)); got != c.fromFlag {
					t.Errorf("%s=%s, svcnat %s: %q, want %q", c.env, c.fromEnv, strings.Join(args, " "), got, c.fromFlag)
				}
			}
			// After the command name is nearer than before it.
			other := c.flag + "=" + c.fromEnv
			if got := c.got(globalsOf(t, other, "globals", flag)); got != c.fromFlag {
				t.Errorf("svcnat %s globals %s: %q, want %q", other, flag, got, c.fromFlag)
			}
		})
	}
}

// The revert watcher gets its state directory, backend and namespace as
// flags; an SVCNAT_* environment naming others (the watcher inherits the
// environment of apply) cannot send it elsewhere.
func TestWatcherArgvBeatsEnvironment(t *testing.T) {
	h := newFakeHost(t)
	elsewhere := t.TempDir()
	t.Setenv("SVCNAT_STATE_DIR", elsewhere)
	t.Setenv("SVCNAT_BACKEND", "legacy")
	t.Setenv("SVCNAT_NETNS", "svcnat-test-elsewhere")
	h.must(ExitOK, "apply", "-auto-approve", "--backend", "nft", "--netns", "", "--confirm-timeout", "200ms")
	w := h.watcher(0)
	if w.code != ExitOK || !strings.Contains(w.output, "msg=reverted") || !strings.Contains(w.output, "state_dir="+h.stateDir) {
		t.Fatalf("watcher: exit %d\n%s", w.code, w.output)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("SVCNAT_STATE_DIR was used: %v", ents)
	}
	if h.generation() != 2 {
		t.Errorf("generation %d in --state-dir, want 2 (the apply and its revert)", h.generation())
	}
	for _, o := range h.opened {
		if o.Backend != "iptables-nft" || o.NetNS != "" {
			t.Errorf("a host opened with backend %q in namespace %q", o.Backend, o.NetNS)
		}
	}
}

// version --netns names the namespace whose iptables it reports: one that
// does not exist is an error, not a version.
func TestVersionInAMissingNamespace(t *testing.T) {
	h := newFakeHost(t)
	for _, args := range [][]string{{"version", "--netns", "svcnat-no-such-namespace"}, {"--netns", "svcnat-no-such-namespace", "--version"}} {
		out, errs, code := h.run(args...)
		refused(t, args, out, errs, code, "svcnat: error: --netns svcnat-no-such-namespace: ", "svcnat: hint: ")
		if !strings.Contains(errs, "no such file or directory") {
			t.Errorf("the error does not say why:\n%s", errs)
		}
	}
}

// The README shows what bad usage prints: it must stay true.
func TestReadmeUsageErrors(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const start = "```\n$ svcnat plan --jsn"
	i := strings.Index(string(readme), start)
	if i < 0 {
		t.Fatal("README has no block of usage errors starting with svcnat plan --jsn")
	}
	block := string(readme)[i+len("```\n"):]
	block = block[:strings.Index(block, "```")]
	var args []string
	var want strings.Builder
	check := func() {
		if args == nil {
			return
		}
		out, errs, code := run(t, args...)
		refused(t, args, out, errs, code)
		if errs != want.String() {
			t.Errorf("README: svcnat %s prints\n%s\nbut svcnat prints\n%s", strings.Join(args, " "), want.String(), errs)
		}
	}
	for _, line := range strings.SplitAfter(block, "\n") {
		if cmd, ok := strings.CutPrefix(line, "$ svcnat "); ok {
			check()
			cmd, _, _ = strings.Cut(strings.TrimSpace(cmd), " >") // the shell's redirection
			args, want = strings.Fields(cmd), strings.Builder{}
			continue
		}
		want.WriteString(line)
	}
	check()
}

// apply, rollback and destroy with --json and nobody to ask are refused
// before the host is opened and before any plan reaches stdout (as
// terraform apply -json); a saved plan or -auto-approve needs no one.
func TestJSONWithoutApprovalIsRefusedAtOnce(t *testing.T) {
	h := newFakeHost(t)
	for _, cmd := range [][]string{{"apply", "--json"}, {"rollback", "--json"}, {"destroy", "--json"}} {
		out, errs, code := h.run(cmd...)
		refused(t, cmd, out, errs, code, "svcnat: error: "+cmd[0]+" --json cannot ask for confirmation; nothing was changed",
			"svcnat: hint: pass -auto-approve")
	}
	t.Setenv("SVCNAT_JSON", "true")
	out, errs, code := h.run("apply")
	refused(t, []string{"apply"}, out, errs, code, "apply --json cannot ask for confirmation")
	if len(h.opened) != 0 {
		t.Errorf("the host was opened %d times", len(h.opened))
	}
	h.must(ExitOK, "apply", "-auto-approve")
}

// fmt reads its files as validate does: a FIFO named *.hcl is refused at
// once, never read (which would block fmt forever).
func TestFmtRefusesAFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "x.hcl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan int, 1)
	var errs string
	go func() {
		var code int
		_, errs, code = run(t, "fmt", fifo)
		done <- code
	}()
	select {
	case code := <-done:
		if code != ExitError || !strings.Contains(errs, "not a regular file") {
			t.Errorf("fmt FIFO: exit %d\n%s", code, errs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fmt blocked reading a FIFO")
	}
}
