// Package linediff diffs two texts line by line and writes the result as
// a unified diff, the form diff -u and git diff write and patch -p1
// applies. It is the differ of text files (svcnat fmt -diff); it knows
// nothing of rules or plans.
//
// go-diff diffs the lines (Myers, in its line mode); it writes patches in
// its own character-level, URL-escaped format only, hence the hunks here.
// Every line counts: blank lines and a last line without a newline are
// lines a hunk must count for patch to apply it.
package linediff

import (
	"fmt"
	"strings"

	"github.com/sergi/go-diff/diffmatchpatch"
)

// Op says what a diff does with a line: keeps it, deletes it from the
// first text or inserts it from the second; its value is the line's mark
// in a unified diff.
type Op byte

// The ops of a line.
const (
	Equal  Op = ' '
	Delete Op = '-'
	Insert Op = '+'
)

// Line is one line of a diff.
type Line struct {
	Op Op
	// Text is the line with the newline that ends it, if one does.
	Text string
	// Before and After count the lines of each text before this one.
	Before, After int
}

// Diff diffs before and after line by line, blank lines and a last line
// without a newline included.
func Diff(before, after string) []Line {
	split := func(s string) []string {
		l := strings.SplitAfter(s, "\n")
		if l[len(l)-1] == "" {
			l = l[:len(l)-1]
		}
		return l
	}
	la, lb := split(before), split(after)
	dmp := diffmatchpatch.New()
	ra, rb, _ := dmp.DiffLinesToRunes(before, after)
	var out []Line
	a, b := 0, 0
	// Each rune of a diff stands for one line.
	for _, d := range dmp.DiffMainRunes(ra, rb, false) {
		for range []rune(d.Text) {
			l := Line{Op: Equal, Before: a, After: b}
			switch d.Type {
			case diffmatchpatch.DiffEqual:
				l.Text = la[a]
				a++
				b++
			case diffmatchpatch.DiffDelete:
				l.Op, l.Text = Delete, la[a]
				a++
			case diffmatchpatch.DiffInsert:
				l.Op, l.Text = Insert, lb[b]
				b++
			}
			out = append(out, l)
		}
	}
	return out
}

// Context is the lines of context around each change, as diff -u and git
// diff give.
const Context = 3

// Unified returns the unified diff from before to after of the file
// path, with a/ and b/ headers (--- a/path, +++ b/path), so that patch -p1
// (and git apply) applies it from the directory path is relative to. Equal
// texts give the headers alone.
func Unified(path, before, after string) string {
	lines := Diff(before, after)
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- a/%s\n+++ b/%s\n", path, path)
	for i := 0; i < len(lines); {
		if lines[i].Op == Equal {
			i++
			continue
		}
		// A hunk runs from Context lines before its first change to
		// Context lines after its last; changes fewer than twice that
		// apart share one.
		start, last := max(i-Context, 0), i
		for j := i + 1; j < len(lines) && j-last <= 2*Context; j++ {
			if lines[j].Op != Equal {
				last = j
			}
		}
		end := min(last+Context+1, len(lines))
		writeHunk(&sb, lines[start:end])
		i = end
	}
	return sb.String()
}

func writeHunk(sb *strings.Builder, hunk []Line) {
	na, nb := 0, 0
	for _, l := range hunk {
		if l.Op != Insert {
			na++
		}
		if l.Op != Delete {
			nb++
		}
	}
	fmt.Fprintf(sb, "@@ -%s +%s @@\n", hunkRange(hunk[0].Before, na), hunkRange(hunk[0].After, nb))
	for _, l := range hunk {
		sb.WriteByte(byte(l.Op))
		sb.WriteString(l.Text)
		if !strings.HasSuffix(l.Text, "\n") {
			sb.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// hunkRange is one side's range as diff -u writes it: the first line and
// the count, the count left out when 1, and the line before when empty.
func hunkRange(before, n int) string {
	switch n {
	case 0:
		return fmt.Sprintf("%d,0", before)
	case 1:
		return fmt.Sprint(before + 1)
	}
	return fmt.Sprintf("%d,%d", before+1, n)
}
