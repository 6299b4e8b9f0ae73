package rules

import (
	"errors"
	"strings"
	"testing"
)

// A dump line that cannot be read is quoted in the error, but cut: a
// 15 MB line was echoed whole.
func TestParseErrorEchoBounded(t *testing.T) {
	long := strings.Repeat("x", 15<<20)
	for _, dump := range []string{
		"*nat\n" + long + "\nCOMMIT\n",
		"*nat\n:" + long + "\nCOMMIT\n",
		"*nat\n-A POSTROUTING \"" + long + "\nCOMMIT\n",
		"-A POSTROUTING " + long + "\n",
	} {
		_, err := ParseSaveString(IPv4, dump)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("err = %.200v, want a *ParseError", err)
		}
		msg := err.Error()
		if len(msg) > 1000 || !strings.Contains(msg, "more bytes") || !strings.HasPrefix(msg, "line 2: ") && !strings.HasPrefix(msg, "line 1: ") {
			t.Errorf("error is %d bytes: %.300s", len(msg), msg)
		}
	}
}
