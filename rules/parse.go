package rules

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ParseError locates a line of an iptables-save dump that could not be read.
type ParseError struct {
	Line int
	Text string
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("line %d: %v: %q", e.Line, e.Err, e.Text)
}

func (e *ParseError) Unwrap() error { return e.Err }

// ParseSave reads an iptables-save (or iptables-restore) dump. Chains keep
// dump order; rule arguments are kept as tokens, unquoted.
func ParseSave(fam Family, r io.Reader) (*Ruleset, error) {
	rs := &Ruleset{Family: fam}
	var t *Table
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		fail := func(err error) error { return &ParseError{Line: n, Text: line, Err: err} }
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			if !validName(line[1:]) {
				return nil, fail(fmt.Errorf("bad table name"))
			}
			t = rs.EnsureTable(line[1:])
		case line == "COMMIT":
			t = nil
		case t == nil:
			return nil, fail(fmt.Errorf("outside of a table"))
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				return nil, fail(fmt.Errorf("malformed chain line"))
			}
			c := t.EnsureChain(f[0])
			c.Policy = f[1]
		default:
			toks, err := Tokenize(line)
			if err != nil {
				return nil, fail(err)
			}
			if len(toks) > 0 && strings.HasPrefix(toks[0], "[") {
				toks = toks[1:] // counters from iptables-save -c
			}
			if len(toks) < 2 || (toks[0] != "-A" && toks[0] != "--append") || !validName(toks[1]) {
				return nil, fail(fmt.Errorf("expected -A CHAIN"))
			}
			t.Append(Rule{Chain: toks[1], Args: toks[2:]})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return rs, nil
}

// validName accepts a table or chain name as iptables prints one: not
// empty, no white space or quotes.
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\"'\\")
}

// Tokenize splits a rule line as iptables-restore does: on white space,
// with double quotes grouping and a backslash inside them taking the next
// character literally.
func Tokenize(line string) ([]string, error) {
	var toks []string
	var cur strings.Builder
	inTok, inQuote := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case inQuote && ch == '\\' && i+1 < len(line):
			cur.WriteByte(line[i+1])
			i++
		case ch == '"':
			inQuote = !inQuote
			inTok = true
		case !inQuote && (ch == ' ' || ch == '\t'):
			if inTok {
				toks = append(toks, cur.String())
				cur.Reset()
				inTok = false
			}
		default:
			cur.WriteByte(ch)
			inTok = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote")
	}
	if inTok {
		toks = append(toks, cur.String())
	}
	return toks, nil
}
