// Package echo cuts text that a message quotes back from its input: a
// configuration value, a source line, a line of an iptables-save dump.
// Input can be any size (a 50 MB service name, a 15 MB dump line) and a
// message that repeats it whole floods a terminal or a log, so every echo
// keeps its first Max bytes and says how much it left out.
package echo

import (
	"fmt"
	"unicode/utf8"
)

// Max is how many bytes of an echoed text are kept: more than any valid
// name or address (a node name is at most 253 characters), so an echo is
// only cut when the text is wrong anyway.
const Max = 256

// Cut returns s when it fits in Max bytes; else its first Max bytes (at a
// UTF-8 boundary) and how many bytes were left out.
func Cut(s string) (head string, more int) { return CutAt(s, Max) }

// CutAt is Cut with a limit of max bytes, for whole messages rather than
// the values they quote.
func CutAt(s string, max int) (head string, more int) {
	if len(s) <= max {
		return s, 0
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], len(s) - n
}

// Text is s cut to Max bytes, with "… (N more bytes)" after a cut.
func Text(s string) string { return TextAt(s, Max) }

// TextAt is Text with a limit of max bytes.
func TextAt(s string, max int) string {
	head, more := CutAt(s, max)
	if more == 0 {
		return head
	}
	return fmt.Sprintf("%s… (%d more bytes)", head, more)
}

// Quote is s as %q writes it, cut to Max bytes of s, with the count of
// what was left out after the closing quote, so that it cannot be taken
// for part of the value: "aaaa…" (49999744 more bytes).
func Quote(s string) string {
	head, more := Cut(s)
	if more == 0 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q (%d more bytes)", head+"…", more)
}

// String wraps s so that fmt's %s, %v and %q verbs print it cut as Text
// and Quote do; for arguments of a format string.
type String string

// Format implements fmt.Formatter.
func (s String) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprint(f, Quote(string(s)))
		return
	}
	fmt.Fprint(f, Text(string(s)))
}
