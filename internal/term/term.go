// Package term decides whether output may be coloured: only on a terminal, and never when
// NO_COLOR is set (https://no-color.org).
package term

import (
	"io"
	"os"

	xterm "golang.org/x/term"
)

// Colors reports whether w is a terminal that should get ANSI colours.
func Colors(w io.Writer) bool {
	if _, off := os.LookupEnv("NO_COLOR"); off {
		return false
	}
	f, ok := w.(*os.File)
	return ok && xterm.IsTerminal(int(f.Fd()))
}

// Paint wraps s in an ANSI colour when enabled.
type Paint bool

const (
	red    = "31"
	green  = "32"
	yellow = "33"
)

func (p Paint) wrap(code, s string) string {
	if !p {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p Paint) Red(s string) string    { return p.wrap(red, s) }
func (p Paint) Green(s string) string  { return p.wrap(green, s) }
func (p Paint) Yellow(s string) string { return p.wrap(yellow, s) }
