package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sergi/go-diff/diffmatchpatch"
)

// diffContext is the lines of context around each change, as diff -u and
// git diff give.
const diffContext = 3

// diffLine is one line of a unified diff: its op (' ', '-' or '+') and its
// text with the newline that ends it, if one does.
type diffLine struct {
	op   byte
	text string
	a, b int // lines of each side before this one
}

// writeUnifiedDiff writes the unified diff from before to after of the
// file name, with a/ and b/ headers, so that patch -p1 (and git apply)
// applies it from the directory the name is relative to (see diffPath).
// go-diff diffs the lines (Myers); it writes patches in its own
// character-level, URL-escaped format only, hence the hunks here.
// planner.RuleDiffText drops blank lines, which in a file are lines a
// hunk must count.
func writeUnifiedDiff(w io.Writer, name, before, after string) error {
	lines := diffLines(before, after)
	var sb strings.Builder
	path := strings.TrimPrefix(diffPath(name), "/")
	fmt.Fprintf(&sb, "--- a/%s\n+++ b/%s\n", path, path)
	for i := 0; i < len(lines); {
		if lines[i].op == ' ' {
			i++
			continue
		}
		// A hunk runs from diffContext lines before its first change to
		// diffContext lines after its last; changes fewer than twice that
		// apart share one.
		start, last := max(i-diffContext, 0), i
		for j := i + 1; j < len(lines) && j-last <= 2*diffContext; j++ {
			if lines[j].op != ' ' {
				last = j
			}
		}
		end := min(last+diffContext+1, len(lines))
		writeHunk(&sb, lines[start:end])
		i = end
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

func writeHunk(sb *strings.Builder, hunk []diffLine) {
	na, nb := 0, 0
	for _, l := range hunk {
		if l.op != '+' {
			na++
		}
		if l.op != '-' {
			nb++
		}
	}
	fmt.Fprintf(sb, "@@ -%s +%s @@\n", hunkRange(hunk[0].a, na), hunkRange(hunk[0].b, nb))
	for _, l := range hunk {
		sb.WriteByte(l.op)
		sb.WriteString(l.text)
		if !strings.HasSuffix(l.text, "\n") {
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

// diffLines diffs before and after line by line, blank lines and a last
// line without a newline included.
func diffLines(before, after string) []diffLine {
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
	var out []diffLine
	a, b := 0, 0
	// Each rune of a diff stands for one line.
	for _, d := range dmp.DiffMainRunes(ra, rb, false) {
		for range []rune(d.Text) {
			l := diffLine{op: ' ', a: a, b: b}
			switch d.Type {
			case diffmatchpatch.DiffEqual:
				l.text = la[a]
				a++
				b++
			case diffmatchpatch.DiffDelete:
				l.op, l.text = '-', la[a]
				a++
			case diffmatchpatch.DiffInsert:
				l.op, l.text = '+', lb[b]
				b++
			}
			out = append(out, l)
		}
	}
	return out
}

// diffPath is how a diff's headers name the file name: relative to the
// working directory when it is below it, however it was given
// (svcnat fmt -diff /etc/svcnat run in /etc/svcnat, or ../conf run in
// conf), so that patch -p1 applies the diff where it was made; else by
// its absolute path, which patch -p1 applies from / (patch refuses a
// name with "..").
func diffPath(name string) string {
	abs, err := filepath.Abs(name)
	if err != nil {
		return name
	}
	wd, err := os.Getwd()
	if err != nil {
		return abs
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && filepath.IsLocal(rel) {
		return rel
	}
	return abs
}
