package iptables

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// Verbatim stderr of iptables 1.8.9 (Debian 12) for rejected payloads.
func TestRestoreFailureParsesStderr(t *testing.T) {
	tests := []struct {
		name, payload, stderr string
		exit                  int
		line                  int
		reason                string
		locked                bool
	}{{
		name:    "legacy missing jump target",
		payload: "*filter\n:SVCNAT-F - [0:0]\nCOMMIT\n*nat\n:SVCNAT-B - [0:0]\n-A SVCNAT-B -j NOPE\nCOMMIT\n",
		stderr: "iptables-restore v1.8.9 (legacy): Couldn't load target `NOPE':No such file or directory\n\n" +
			"Error occurred at line: 6\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n",
		exit: 2, line: 6, reason: "Couldn't load target `NOPE':No such file or directory",
	}, {
		// nft blames the COMMIT line (7); the error points at the rule.
		name:    "nft missing jump target",
		payload: "*filter\n:SVCNAT-F - [0:0]\nCOMMIT\n*nat\n:SVCNAT-B - [0:0]\n-A SVCNAT-B -j NOPE\nCOMMIT\n",
		stderr: "iptables-nft-restore v1.8.9 (nf_tables): Chain 'NOPE' does not exist\nError occurred at line: 7\n" +
			"Try `iptables-nft-restore -h' or 'iptables-nft-restore --help' for more information.\n",
		exit: 2, line: 6, reason: "Chain 'NOPE' does not exist",
	}, {
		name:    "legacy command failed",
		payload: "*nat\n-D SVCNAT-A -j ACCEPT\nCOMMIT\n",
		stderr:  "iptables-restore: line 2 failed\n",
		exit:    1, line: 2, reason: "",
	}, {
		name:    "nft command failed",
		payload: "*nat\n-D SVCNAT-A -j ACCEPT\nCOMMIT\n",
		stderr:  "iptables-nft-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?).\n",
		exit:    1, line: 2, reason: "Bad rule (does a matching rule exist in that chain?).",
	}, {
		name:    "nft batch refused at commit",
		payload: "*nat\n:SVCNAT-L - [0:0]\n-X SVCNAT-L\nCOMMIT\n",
		stderr:  "iptables-nft-restore v1.8.9 (nf_tables): \nline 3: CHAIN_DEL failed (Device or resource busy): chain SVCNAT-L\n",
		exit:    4, line: 3, reason: "CHAIN_DEL failed (Device or resource busy): chain SVCNAT-L",
	}, {
		name:    "missing COMMIT",
		payload: "*nat\n:SVCNAT-C - [0:0]\n",
		stderr:  "iptables-restore: COMMIT expected at line 3\n",
		exit:    1, line: 3, reason: "COMMIT expected at line 3",
	}, {
		name:    "unknown option",
		payload: "*nat\n:SVCNAT-B - [0:0]\n-A SVCNAT-B --bogus\nCOMMIT\n",
		stderr: "iptables-nft-restore v1.8.9 (nf_tables): unknown option \"--bogus\"\nError occurred at line: 3\n" +
			"Try `iptables-nft-restore -h' or 'iptables-nft-restore --help' for more information.\n",
		exit: 2, line: 3, reason: `unknown option "--bogus"`,
	}, {
		name:    "nft unknown table",
		payload: "*natx\n:SVCNAT-C - [0:0]\nCOMMIT\n",
		stderr: "iptables-nft-restore v1.8.9 (nf_tables): iptables-nft-restore: line 1 table name 'natx' invalid\n" +
			"Error occurred at line: 1\nTry `iptables-nft-restore -h' or 'iptables-nft-restore --help' for more information.\n",
		exit: 2, line: 1, reason: "line 1 table name 'natx' invalid",
	}, {
		name:    "legacy goto missing chain",
		payload: "*nat\n:SVCNAT-B - [0:0]\n-A SVCNAT-B -j ACCEPT\n-A SVCNAT-B -g NOPE\nCOMMIT\n",
		stderr: "iptables-restore v1.8.9 (legacy): goto 'NOPE' is not a chain\nError occurred at line: 4\n" +
			"Try `iptables-restore -h' or 'iptables-restore --help' for more information.\n",
		exit: 2, line: 4, reason: "goto 'NOPE' is not a chain",
	}, {
		name:    "xtables lock",
		payload: "*filter\nCOMMIT\n",
		stderr:  "Another app is currently holding the xtables lock. Stopped waiting after 1s.\n",
		exit:    4, locked: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := restoreFailure(backend.IPv4, []byte(tt.payload), tt.stderr, tt.exit, errors.New("exit status"))
			if got := errors.Is(err, ErrLocked); got != tt.locked {
				t.Fatalf("errors.Is(ErrLocked) = %v, want %v (%v)", got, tt.locked, err)
			}
			var re *backend.TxError
			if !errors.As(err, &re) {
				t.Fatalf("not a *backend.TxError: %v", err)
			}
			if tt.locked {
				return
			}
			if re.Line != tt.line || re.Reason != tt.reason {
				t.Errorf("line %d reason %q, want line %d reason %q", re.Line, re.Reason, tt.line, tt.reason)
			}
			if re.Stderr != tt.stderr {
				t.Errorf("stderr not kept: %q", re.Stderr)
			}
			if lines := strings.Split(tt.payload, "\n"); re.Line <= len(lines) && re.LineText != lines[re.Line-1] {
				t.Errorf("line text %q, want %q", re.LineText, lines[re.Line-1])
			}
		})
	}
}

func TestRestoreFailureWrapsExitError(t *testing.T) {
	err := exec.Command("false").Run()
	re := restoreFailure(backend.IPv6, []byte("*nat\n"), "iptables-restore: line 1 failed\n", 1, err)
	var ee *exec.ExitError
	if !errors.As(re, &ee) {
		t.Fatalf("exit error not reachable through %v", re)
	}
	want := `iptables-restore rejected the payload at line 1 "*nat" (exit status 1)`
	if re.Error() != want {
		t.Errorf("Error() = %q, want %q", re.Error(), want)
	}
}

func TestParseVersionAndBackend(t *testing.T) {
	for s, want := range map[string]Version{
		"iptables v1.8.9 (nf_tables)":        {1, 8, 9, "nf_tables"},
		"iptables-restore v1.8.9 (legacy)\n": {1, 8, 9, "legacy"},
		"iptables v1.6.1":                    {1, 6, 1, "legacy"},
	} {
		got, err := ParseVersion(s)
		if err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if v := (Version{1, 6, 1, "legacy"}); v.HasRandomFully() {
		t.Error("1.6.1 has no --random-fully")
	}
	if v := (Version{1, 8, 9, "nf_tables"}); !v.HasRandomFully() {
		t.Error("1.8.9 has --random-fully")
	}
	for in, want := range map[string]Backend{"": Auto, "auto": Auto, "nft": NFT, "legacy": Legacy} {
		if got, err := ParseBackend(in); err != nil || got != want {
			t.Errorf("ParseBackend(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseBackend("iptables"); err == nil {
		t.Error("ParseBackend accepted an unknown backend")
	}
	if got := waitSeconds(0); got != 5 {
		t.Errorf("default wait %d", got)
	}
	if got := waitSeconds(1500 * 1e6); got != 2 {
		t.Errorf("1.5s rounds up to %d", got)
	}
	if got := waitSeconds(MaxWait * 10); got != int(MaxWait.Seconds()) {
		t.Errorf("wait not bounded: %d", got)
	}
}
