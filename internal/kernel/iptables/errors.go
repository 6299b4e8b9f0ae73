package iptables

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// Errors callers branch on, checked with errors.Is.
var (
	// ErrLocked: another program held the xtables lock for longer than
	// Options.Wait (iptables-restore exit status 4).
	ErrLocked = errors.New("xtables lock held by another program")
	// ErrFlushRefused: Restore was called without NoFlushTables.
	ErrFlushRefused = errors.New("refusing iptables-restore without --noflush: it would flush rules svcnat does not own")
	// ErrBothBackends: svcnat's chains exist in both the nft and the
	// legacy backend, so Detect cannot tell which one is in use.
	ErrBothBackends = errors.New("svcnat chains found in both the nft and the legacy iptables backend")
	// ErrOtherBackend: an explicit backend was asked for while svcnat's
	// chains are in the other one (see OtherBackendError).
	ErrOtherBackend = errors.New("svcnat chains are in the other iptables backend")
	// ErrInjected marks a failure injected into a Fake (FailOnLine, FailWhen).
	ErrInjected = errors.New("injected failure")
)

// BothBackendsError lists svcnat's chains found in each backend. It
// matches ErrBothBackends with errors.Is.
type BothBackendsError struct {
	NFT, Legacy []string
}

func (e *BothBackendsError) Error() string {
	return fmt.Sprintf("%v: nft has %s, legacy has %s; remove one set or choose --backend",
		ErrBothBackends, summarize(e.NFT), summarize(e.Legacy))
}

func (e *BothBackendsError) Unwrap() error { return ErrBothBackends }

func summarize(names []string) string {
	if len(names) > 3 {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:3], ", "), len(names)-3)
	}
	return strings.Join(names, ", ")
}

// The stderr shapes iptables 1.8.9 prints for a rejected payload, seen on
// this project's test hosts (see errors_test.go for verbatim samples):
//
//	both:   "Error occurred at line: N"       a line the parser refused
//	        "iptables-restore: line N failed" a command that failed (legacy
//	                                          stops there; nft adds ": reason")
//	        "COMMIT expected at line N"       payload ended inside a table
//	nft:    "line N: CHAIN_DEL failed (...)"  the kernel refused the batch
//	                                          at COMMIT, blaming line N
//	legacy: "iptables-restore: line N failed" where N is the COMMIT line
//	                                          when the kernel refused the
//	                                          table (a NAT target in filter)
//	        "Another app is currently holding the xtables lock" (exit 4;
//	                                          nft takes no xtables lock)
var (
	lineRE = []*regexp.Regexp{
		regexp.MustCompile(`Error occurred at line: ([0-9]+)`),
		regexp.MustCompile(`line ([0-9]+) failed`),
		regexp.MustCompile(`COMMIT expected at line ([0-9]+)`),
		regexp.MustCompile(`(?m)^line ([0-9]+): `),
	}
	missingChainRE = regexp.MustCompile(`Chain '([^']+)' does not exist`)
	progPrefixRE   = regexp.MustCompile(`^(?:ip6?tables(?:-nft|-legacy)?-restore)(?: v[0-9.]+(?: \([a-z_]+\))?)?: ?`)
	failedRE       = regexp.MustCompile(`^line [0-9]+ failed:? ?(.*)$`)
	batchRE        = regexp.MustCompile(`^line [0-9]+: (.*)$`)
)

// restoreFailure is the one place that reads iptables-restore's stderr. It
// turns a failed run into a *backend.TxError carrying the failing line; for a
// held lock, Line is 0 and Err wraps ErrLocked. The text is only matched to locate the line and
// to recognise the lock; callers branch on the typed result, never on text.
//
// One correction is made: iptables-nft-restore resolves jump targets when
// it reaches the table's COMMIT and then blames the COMMIT line ("Chain
// 'X' does not exist" / "Error occurred at line: <COMMIT>"), where legacy
// blames the rule. The error then points at the first rule of that table
// that jumps to X, as legacy and the Fake do.
func restoreFailure(fam backend.Family, payload []byte, stderr string, exitCode int, err error) error {
	stderr = withoutLegacyWarning(stderr)
	if exitCode == 4 && strings.Contains(stderr, "holding the xtables lock") {
		return &backend.TxError{Family: fam, Tool: restoreTool, Reason: firstLine(stderr), Stderr: stderr, Err: fmt.Errorf("%w (%v)", ErrLocked, err)}
	}
	line := 0
	for _, re := range lineRE {
		if m := re.FindStringSubmatch(stderr); m != nil {
			line, _ = strconv.Atoi(m[1])
			break
		}
	}
	lines := strings.Split(string(payload), "\n")
	if m := missingChainRE.FindStringSubmatch(stderr); m != nil && line > 0 && line <= len(lines) &&
		strings.TrimSpace(lines[line-1]) == "COMMIT" {
		if l := firstJumpTo(lines[:line-1], m[1]); l > 0 {
			line = l
		}
	}
	e := &backend.TxError{Family: fam, Tool: restoreTool, Line: line, Reason: restoreReason(stderr), Stderr: stderr, Err: err}
	if line > 0 && line <= len(lines) {
		e.LineText = strings.TrimSpace(lines[line-1])
	}
	return e
}

// firstJumpTo returns the 1-based number of the first line of the last
// table in lines that jumps or goes to chain, or 0.
func firstJumpTo(lines []string, chain string) int {
	start := 0
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "*") {
			start = i
		}
	}
	for i := start; i < len(lines); i++ {
		toks, err := rules.Tokenize(strings.TrimSpace(lines[i]))
		if err == nil && (backend.Rule{Args: toks}).Target() == chain {
			return i + 1
		}
	}
	return 0
}

// restoreReason picks the explanation out of stderr: the first line that
// says more than where the error was, without the program prefix.
func restoreReason(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		for p := ""; p != l; { // nft may repeat the prefix: "... (nf_tables): iptables-nft-restore: ..."
			p, l = l, progPrefixRE.ReplaceAllString(l, "")
		}
		switch {
		case l == "", strings.HasPrefix(l, "Error occurred at line"), strings.HasPrefix(l, "Try `"),
			strings.HasPrefix(l, "Ignoring deprecated"):
			continue
		}
		if m := failedRE.FindStringSubmatch(l); m != nil {
			if m[1] == "" {
				continue
			}
			return m[1]
		}
		if m := batchRE.FindStringSubmatch(l); m != nil {
			return m[1]
		}
		return l
	}
	return ""
}

// legacyWarningRE is the line iptables-nft's programs print whenever the
// legacy backend has tables in the namespace ("# Warning: iptables-legacy
// tables present, use iptables-legacy-save to see them"): on stderr since
// iptables 1.8.8, on stdout among the dump's comments before.
var legacyWarningRE = regexp.MustCompile(`(?m)^# Warning: iptables-legacy tables present, use \S+ to see them\r?(?:\n|$)`)

// withoutLegacyWarning is iptables' output without that warning, which is
// never the reason a program failed and would otherwise end up in
// svcnat's errors: svcnat says it in its own words, once (see
// Detection.LegacyTables), with what the legacy tables hold.
func withoutLegacyWarning(s string) string { return legacyWarningRE.ReplaceAllString(s, "") }

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
