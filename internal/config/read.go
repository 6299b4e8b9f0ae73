package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// MaxFileSize is the largest configuration file svcnat reads, in bytes.
// A file of 10,000 services with five endpoints each (internal/bench) is
// 4.7 MB, and one of 30,000 is 14 MB; beyond this, split the configuration
// into several files of a directory. The limit bounds memory: a file's
// syntax tree takes about 25 times its size.
const MaxFileSize = 16 << 20

// MaxNesting is how deep brackets, braces, parentheses, strings, templates
// and operators may nest (checkNesting says how it counts). hcl parses and
// evaluates by recursion, once per level, and 80,000 levels overflow the
// stack: a fatal error that no recover catches, which would stop every
// command and the daemon. A configuration is data and nests a few levels.
const MaxNesting = 100

// checkEntry says why the directory entry path cannot be read as a
// configuration file, or nil when it is a regular file (through any
// symbolic links).
func checkEntry(path string) *hcl.Diagnostic {
	fi, err := os.Stat(path)
	if err != nil {
		return unreadable(path, err)
	}
	return checkMode(path, fi)
}

// checkMode refuses anything but a regular file: reading a named pipe
// blocks until someone writes, and a device never ends.
func checkMode(path string, fi fs.FileInfo) *hcl.Diagnostic {
	kind := "a special file"
	switch m := fi.Mode(); {
	case m.IsRegular():
		return nil
	case m.IsDir():
		kind = "a directory"
	case m&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	case m&fs.ModeDevice != 0:
		kind = "a device"
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "configuration file is not a regular file",
		Detail:   fmt.Sprintf("%s is %s, not a regular file. Every *.hcl entry of a configuration directory is read as a file: rename or remove it.", path, kind),
	}
}

// unreadable explains an error of stat or open on path, and names the
// target when path is a symbolic link that cannot be followed: a checkout
// swapped under a directory leaves such links, and skipping them would
// remove their services in silence.
func unreadable(path string, err error) *hcl.Diagnostic {
	cause := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		cause = pe.Err
	}
	detail := fmt.Sprintf("%s: %v.", path, cause)
	if target, lerr := os.Readlink(path); lerr == nil {
		detail = fmt.Sprintf("%s is a symbolic link to %s, which cannot be read: %v. Restore its target or remove the link.", path, target, cause)
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "cannot read configuration file", Detail: detail}
}

func tooLarge(path string, size int64) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "configuration file too large",
		Detail: fmt.Sprintf("%s is %d bytes, larger than the %d (%d MiB) svcnat reads from one file; split the configuration into several files of a directory.",
			path, size, MaxFileSize, MaxFileSize>>20),
	}
}

// ReadFile reads one configuration file, as Load does; svcnat fmt should
// read with it too. It never blocks: the file is opened with O_NONBLOCK,
// so a named pipe put in place after the directory was listed opens at
// once, and is then refused, like any file that is not regular, by what
// the open descriptor is. Nor does it read more than MaxFileSize+1 bytes
// of a file that grows. A refusal is a diagnostic naming path.
func ReadFile(path string) ([]byte, *hcl.Diagnostic) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, unreadable(path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, unreadable(path, err)
	}
	if d := checkMode(path, fi); d != nil {
		return nil, d
	}
	if fi.Size() > MaxFileSize {
		return nil, tooLarge(path, fi.Size())
	}
	// Sized as os.ReadFile does, from the size the file had when opened.
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, unreadable(path, err)
	}
	if buf.Len() > MaxFileSize {
		return nil, tooLarge(path, int64(buf.Len()))
	}
	return buf.Bytes(), nil
}

// checkNesting finds the first token of src that nests deeper than
// MaxNesting, before hcl's recursive parser sees it. Most files are plain
// data that quickNesting clears at a glance; the others are scanned with
// hcl's own lexer (tokenNesting), exactly as the parser will see them.
func checkNesting(name string, src []byte) *hcl.Diagnostic {
	if _, sure := quickNesting(src, MaxNesting); sure {
		return nil
	}
	if _, at := tokenNesting(name, src, MaxNesting); at != nil {
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "configuration nested too deeply",
			Detail: fmt.Sprintf("Brackets, strings, templates and operators nest more than %d deep here; svcnat reads no deeper. A configuration is data: write the value itself.",
				MaxNesting),
			Subject: at,
		}
	}
	return nil
}

// tokenNesting returns the greatest nesting depth of src's tokens, and the
// range of the first token deeper than limit (nil if none). It counts on
// hcl's scanner, which keeps its state on the heap, so strings, comments
// and heredocs are told apart exactly as the parser will; but the tokens
// take about 130 bytes per byte of source, which is why quickNesting runs
// first.
//
// The depth at a token is how many brackets of any kind (strings,
// templates and heredocs too) are open, plus the open %{if} and %{for}
// directives of templates, plus the operators met so far in the current
// item of the innermost bracket: hcl parses a ? b : c ? … and - - x by
// recursion, and evaluates a chain such as 1 + 1 + … or a[x][x]… as a
// tree as deep as the chain is long (two million terms overflowed the
// stack in BinaryOpExpr.Value). An item ends at a comma, and at a newline
// (or a comment, which ends with one) in a body or an object, where
// newlines separate items; inside parentheses and brackets hcl reads a
// newline as a space, so it does not end one there.
func tokenNesting(name string, src []byte, limit int) (deepest int, at *hcl.Range) {
	toks, _ := hclsyntax.LexConfig(src, name, hcl.InitialPos) // lexical errors are the parser's to report
	type level struct {
		ops         int  // operators in the current item
		newlineSeps bool // a newline ends an item: a body or an object
	}
	stack := []level{{newlineSeps: true}}
	directives := 0 // open %{if} and %{for}
	prev := hclsyntax.TokenNil
	for i, tok := range toks {
		top := &stack[len(stack)-1]
		switch tok.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen, hclsyntax.TokenOQuote,
			hclsyntax.TokenOHeredoc, hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			if tok.Type == hclsyntax.TokenOBrack && endsOperand(prev) {
				top.ops++ // an index, a[x]: one more level under the indexed value
			}
			if tok.Type == hclsyntax.TokenTemplateControl && i+1 < len(toks) {
				switch string(toks[i+1].Bytes) {
				case "if", "for":
					directives++
				case "endif", "endfor":
					directives = max(directives-1, 0)
				}
			}
			stack = append(stack, level{newlineSeps: tok.Type == hclsyntax.TokenOBrace})
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen, hclsyntax.TokenCQuote,
			hclsyntax.TokenCHeredoc, hclsyntax.TokenTemplateSeqEnd:
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
		case hclsyntax.TokenComma:
			top.ops = 0
		case hclsyntax.TokenNewline, hclsyntax.TokenComment:
			if top.newlineSeps && (tok.Type == hclsyntax.TokenNewline || bytes.HasSuffix(tok.Bytes, []byte{'\n'})) {
				top.ops = 0
			}
		case hclsyntax.TokenPlus, hclsyntax.TokenMinus, hclsyntax.TokenStar, hclsyntax.TokenSlash, hclsyntax.TokenPercent,
			hclsyntax.TokenEqualOp, hclsyntax.TokenNotEqual, hclsyntax.TokenLessThan, hclsyntax.TokenLessThanEq,
			hclsyntax.TokenGreaterThan, hclsyntax.TokenGreaterThanEq, hclsyntax.TokenAnd, hclsyntax.TokenOr,
			hclsyntax.TokenBang, hclsyntax.TokenQuestion, hclsyntax.TokenDot:
			top.ops++
		}
		prev = tok.Type
		depth := len(stack) - 1 + directives + stack[len(stack)-1].ops
		deepest = max(deepest, depth)
		if depth > limit {
			return deepest, tok.Range.Ptr()
		}
	}
	return deepest, nil
}

// quickNesting bounds tokenNesting's depth from the bytes, without
// allocating: deepest is never less than what tokenNesting finds. It is
// sure only of the plain data configurations are made of; at anything
// whose tokens it does not model exactly (a template or an escape of one
// in a string, a heredoc, a block comment, a line break inside a string,
// a stray $ or backslash, invalid UTF-8) and when the bound passes limit,
// it gives up (sure is false) and leaves the file to tokenNesting.
//
// Where it cannot tell tokens apart it counts more, never less: every
// operator character (so == counts twice, and the . and - of 1.5e-3
// count), the = of an attribute, and every [ as an index.
func quickNesting(src []byte, limit int) (deepest int, sure bool) {
	if !utf8.Valid(src) {
		return 0, false // a bad sequence could hide a quote from one scanner and not the other
	}
	type level struct {
		ops         int
		newlineSeps bool
	}
	stack := []level{{newlineSeps: true}}
	next := func(i int) byte {
		if i+1 < len(src) {
			return src[i+1]
		}
		return 0
	}
	for i := 0; i < len(src); i++ {
		top := &stack[len(stack)-1]
		switch c := src[i]; c {
		case '"':
			if len(stack) > limit { // the string is a level of its own
				return len(stack), false
			}
			deepest = max(deepest, len(stack))
			for i++; ; i++ {
				if i >= len(src) {
					return deepest, false
				}
				c := src[i]
				if c == '"' {
					break
				}
				switch {
				case c == '\\':
					if n := next(i); n == '\n' || n == '\r' || n == '$' || n == '%' || n == 0 {
						return deepest, false
					}
					i++ // the escaped character
				case c == '\n' || c == '\r':
					return deepest, false
				case (c == '$' || c == '%') && next(i) == '{':
					return deepest, false
				}
			}
		case '#':
			for i+1 < len(src) && src[i+1] != '\n' {
				i++ // the newline ending the comment is read as one below
			}
		case '/':
			switch next(i) {
			case '/':
				for i+1 < len(src) && src[i+1] != '\n' {
					i++
				}
			case '*':
				return deepest, false
			default:
				top.ops++
			}
		case '<', '%':
			if (c == '<' && next(i) == '<') || (c == '%' && next(i) == '{') {
				return deepest, false // a heredoc, or a template directive out of place
			}
			top.ops++
		case '$', '\\', '\'', '`':
			return deepest, false
		case '[', '(', '{':
			if c == '[' {
				top.ops++
			}
			stack = append(stack, level{newlineSeps: c == '{'})
		case ']', ')', '}':
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			top.ops = 0
		case '\n':
			if top.newlineSeps {
				top.ops = 0
			}
		case '+', '-', '*', '=', '!', '>', '&', '|', '?', '.':
			top.ops++
		}
		depth := len(stack) - 1 + stack[len(stack)-1].ops
		deepest = max(deepest, depth)
		if depth > limit {
			return deepest, false
		}
	}
	return deepest, true
}

// endsOperand reports whether a token of type t can end an operand, so
// that a [ after it is an index rather than a tuple.
func endsOperand(t hclsyntax.TokenType) bool {
	switch t {
	case hclsyntax.TokenIdent, hclsyntax.TokenNumberLit, hclsyntax.TokenCBrack, hclsyntax.TokenCParen,
		hclsyntax.TokenCBrace, hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc, hclsyntax.TokenStar:
		return true
	}
	return false
}

// guard refuses a source svcnat will not parse, before hcl sees it: too
// large, or nested too deeply.
func guard(name string, src []byte) *hcl.Diagnostic {
	if len(src) > MaxFileSize {
		return tooLarge(name, int64(len(src)))
	}
	return checkNesting(name, src)
}
