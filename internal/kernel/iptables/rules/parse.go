package rules

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"

	"github.com/svcnat/svcnat/internal/echo"
)

// ParseError locates a line of an iptables-save dump that could not be read.
type ParseError struct {
	Line int
	Text string // the whole line; Error quotes it cut (echo.Quote)
	Err  error
}

// Error quotes the line cut to echo.Max bytes: a dump is input, and a
// 15 MB line was echoed whole into the error and the log.
func (e *ParseError) Error() string {
	return fmt.Sprintf("line %d: %v: %s", e.Line, e.Err, echo.Quote(e.Text))
}

func (e *ParseError) Unwrap() error { return e.Err }

// ParseSave reads an iptables-save (or iptables-restore) dump. Chains keep
// dump order; rule arguments are kept as tokens, unquoted.
func ParseSave(fam Family, r io.Reader) (*Ruleset, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return ParseSaveString(fam, string(data))
}

// ParseSaveLikeFrom is ParseSaveLike reading the dump from r as it comes,
// a line at a time: an iptables-save of 10,000 services is 25 MB, which is
// then never held whole.
func ParseSaveLikeFrom(fam Family, r io.Reader, like *Ruleset) (*Ruleset, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var readErr error
	next := func() (string, bool) {
		line, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			readErr = err
			return "", false
		}
		return line, line != ""
	}
	rs, err := parseLines(fam, next, like)
	if readErr != nil {
		return nil, readErr
	}
	return rs, err
}

// ParseSaveString is ParseSave over a dump in memory. The rules' tokens are
// substrings of dump wherever they need no unquoting, so a dump of 250,000
// rules costs its own size and the slices of tokens, not an allocation per
// token.
func ParseSaveString(fam Family, dump string) (*Ruleset, error) {
	return ParseSaveLike(fam, dump, nil)
}

// ParseSaveLike is ParseSaveString for a dump that mostly holds the rules
// of like, such as the live rules svcnat applied from the desired ones: a
// rule equal to the one at the same place of the same chain in like is
// like's own, shared, and the others are copied out of dump. So the result
// costs only what differs from like, and dump can be freed. With a nil
// like it shares nothing and copies nothing.
func ParseSaveLike(fam Family, dump string, like *Ruleset) (*Ruleset, error) {
	rest := dump
	next := func() (string, bool) {
		if rest == "" {
			return "", false
		}
		var line string
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			line, rest = rest, ""
		}
		return line, true
	}
	return parseLines(fam, next, like)
}

// parseLines is the parser of ParseSaveLike over lines from next.
func parseLines(fam Family, next func() (string, bool), like *Ruleset) (*Ruleset, error) {
	rs := &Ruleset{Family: fam}
	var t *Table
	var lt *Table // like's table of the same name
	var lc *Chain // like's chain of the last rule, and where in it we are
	lcName, lcAt := "", 0
	var scratch []string // one rule's tokens, reused: only kept rules allocate
	n := 0
	for {
		line, ok := next()
		if !ok {
			break
		}
		n++
		line = strings.TrimSpace(line)
		fail := func(err error) error { return &ParseError{Line: n, Text: line, Err: err} }
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			if !validName(line[1:]) {
				return nil, fail(fmt.Errorf("bad table name"))
			}
			name := line[1:]
			if like != nil {
				name = strings.Clone(name)
				lt = like.Table(name)
			}
			t = rs.EnsureTable(name)
			lc, lcName = nil, ""
		case line == "COMMIT":
			t = nil
		case t == nil:
			return nil, fail(fmt.Errorf("outside of a table"))
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				return nil, fail(fmt.Errorf("malformed chain line"))
			}
			name, policy := f[0], f[1]
			if like != nil { // nothing may keep dump alive
				if lt != nil && lt.Chain(name) != nil {
					name = lt.Chain(name).Name
				} else {
					name = strings.Clone(name)
				}
				policy = strings.Clone(policy)
			}
			c := t.EnsureChain(name)
			c.Policy = policy
		default:
			var err error
			if scratch, err = tokenizeInto(scratch[:0], line); err != nil {
				return nil, fail(err)
			}
			toks := scratch
			if len(toks) > 0 && strings.HasPrefix(toks[0], "[") {
				toks = toks[1:] // counters from iptables-save -c
			}
			if len(toks) < 2 || (toks[0] != "-A" && toks[0] != "--append") || !validName(toks[1]) {
				return nil, fail(fmt.Errorf("expected -A CHAIN"))
			}
			r := Rule{Chain: toks[1], Args: toks[2:]}
			if like == nil {
				r.Args = slices.Clone(r.Args)
				t.Append(r)
				continue
			}
			if r.Chain != lcName {
				lcName, lcAt, lc = r.Chain, 0, nil
				if lt != nil {
					lc = lt.Chain(r.Chain)
				}
			}
			if lc != nil && lcAt < len(lc.Rules) && lc.Rules[lcAt].Equal(r) {
				r = lc.Rules[lcAt]
			} else {
				r = Rule{Chain: strings.Clone(r.Chain), Args: cloneStrings(r.Args)}
			}
			lcAt++
			t.Append(r)
		}
	}
	return rs, nil
}

// cloneStrings copies ss and its strings, so that they keep nothing else
// alive.
func cloneStrings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.Clone(s)
	}
	return out
}

// validName accepts a table or chain name as iptables prints one: not
// empty, no white space (of any kind: a chain line is split into fields),
// control characters or quotes.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' || r == '\'' || r == '\\' {
			return false
		}
	}
	return true
}

// Tokenize splits a rule line as iptables-restore does: on white space,
// with double quotes grouping and a backslash inside them taking the next
// character literally. Tokens are substrings of line unless a backslash
// made them differ from it.
func Tokenize(line string) ([]string, error) {
	return tokenizeInto(make([]string, 0, countTokens(line)), line)
}

// tokenizeInto is Tokenize appending to toks.
func tokenizeInto(toks []string, line string) ([]string, error) {
	for i := 0; i < len(line); {
		c := line[i]
		if c == ' ' || c == '\t' {
			i++
			continue
		}
		// One token: unquoted and quoted stretches up to white space
		// outside quotes.
		start, simple := i, true
		var b strings.Builder
		inQuote := false
		for ; i < len(line); i++ {
			c := line[i]
			if !inQuote && (c == ' ' || c == '\t') {
				break
			}
			switch {
			case c == '"':
				if simple {
					b.WriteString(line[start:i])
					simple = false
				}
				inQuote = !inQuote
			case inQuote && c == '\\' && i+1 < len(line):
				if simple {
					b.WriteString(line[start:i])
					simple = false
				}
				i++
				b.WriteByte(line[i])
			default:
				if !simple {
					b.WriteByte(c)
				}
			}
		}
		if inQuote {
			return nil, fmt.Errorf("unterminated quote")
		}
		if simple {
			toks = append(toks, line[start:i])
		} else {
			toks = append(toks, quotedToken(line[start:i], b.String()))
		}
	}
	return toks, nil
}

// quotedToken returns unquoted, the value of the quoted token raw, as a
// substring of raw when raw is just unquoted between quotes.
func quotedToken(raw, unquoted string) string {
	if len(raw) == len(unquoted)+2 && raw[0] == '"' && raw[len(raw)-1] == '"' && raw[1:len(raw)-1] == unquoted {
		return raw[1 : len(raw)-1]
	}
	return unquoted
}

// countTokens is how many white-space separated words line has, an upper
// bound of its tokens (quotes only join words).
func countTokens(line string) int {
	n, in := 0, false
	for i := 0; i < len(line); i++ {
		ws := line[i] == ' ' || line[i] == '\t'
		if !ws && !in {
			n++
		}
		in = !ws
	}
	return n
}
