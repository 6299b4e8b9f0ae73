package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	h := newFakeHost(t)
	out := h.must(ExitOK, "--version")
	if !strings.HasPrefix(out, "svcnat ") || !strings.Contains(out, ", iptables-nft backend") {
		t.Fatalf("--version:\n%s", out)
	}
	var r versionReport
	if err := json.Unmarshal([]byte(h.must(ExitOK, "version", "--json")), &r); err != nil || r.Version == "" || r.Go == "" || r.IPTables.Backend != "iptables-nft" {
		t.Fatalf("version --json: %v %+v", err, r)
	}
}

func TestCompletion(t *testing.T) {
	h := newFakeHost(t)
	if out := h.must(ExitOK, "completion", "bash"); !strings.Contains(out, "complete -o bashdefault -o default -F _svcnat svcnat") {
		t.Fatalf("bash:\n%s", out)
	}
	if out := h.must(ExitOK, "completion", "zsh"); !strings.HasPrefix(out, "#compdef svcnat") {
		t.Fatalf("zsh:\n%s", out)
	}
	if out := h.must(ExitOK, "completion", "fish"); !strings.Contains(out, "complete -c svcnat") || !strings.Contains(out, "confirm-timeout") {
		t.Fatalf("fish:\n%s", out)
	}
	h.must(ExitError, "completion", "tcsh")
	// What the scripts ask svcnat (--generate-bash-completion) urfave/cli
	// answers from os.Args: the packaging test drives the installed
	// script in bash against the real binary.
	if out := h.must(ExitOK, "man"); !strings.Contains(out, ".TH svcnat 8") || !strings.Contains(out, "reconcile") {
		t.Fatalf("man:\n%.300s", out)
	}
}
