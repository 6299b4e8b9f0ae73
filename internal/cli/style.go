package cli

import "github.com/svcnat/svcnat/internal/kernel/backend"

// style colours output on a terminal; every glyph and colour lives here.
type style struct{ on bool }

func newStyle(on bool) style { return style{on: on} }

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
)

func (s style) wrap(code, text string) string {
	if !s.on {
		return text
	}
	return code + text + ansiReset
}

func (s style) bold(t string) string { return s.wrap(ansiBold, t) }
func (s style) dim(t string) string  { return s.wrap(ansiDim, t) }

func (s style) color(a backend.Action, t string) string {
	switch a {
	case backend.Create:
		return s.wrap(ansiGreen, t)
	case backend.Delete:
		return s.wrap(ansiRed, t)
	case backend.Update:
		return s.wrap(ansiYellow, t)
	}
	return t
}

// glyph is the action's one-character mark, coloured.
func (s style) glyph(a backend.Action) string { return s.color(a, string(rune(a))) }
