package echo

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCut(t *testing.T) {
	short := strings.Repeat("a", Max)
	if Text(short) != short || Quote(short) != fmt.Sprintf("%q", short) {
		t.Errorf("a text of Max bytes was cut")
	}
	long := strings.Repeat("a", 50<<20)
	if got, want := Text(long), short+"… (52428544 more bytes)"; got != want {
		t.Errorf("Text = %.300q, want %q", got, want)
	}
	if got, want := Quote(long), `"`+short+`…" (52428544 more bytes)`; got != want {
		t.Errorf("Quote = %.300q", got)
	}
	if got := fmt.Sprintf("name %q, %s", String(long), String(long)); got != "name "+Quote(long)+", "+Text(long) {
		t.Errorf("String formats as %.300q", got)
	}
	// A cut never splits a character.
	wide := strings.Repeat("é", Max)
	if head, more := Cut(wide); !utf8.ValidString(head) || len(head)+more != len(wide) {
		t.Errorf("Cut(é…) = %d bytes + %d", len(head), more)
	}
}
