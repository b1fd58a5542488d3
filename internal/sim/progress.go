package sim

import (
	"fmt"
	"io"
	"os"
)

// progressLine writes a run's progress. On a terminal it is one line
// redrawn in place; elsewhere (a CI log, a file) a carriage return would
// make one endless line, so it writes a plain line at every tenth of the
// run instead.
type progressLine struct {
	w   io.Writer
	tty bool
}

func newProgress(w io.Writer) *progressLine {
	if w == nil {
		return nil
	}
	return &progressLine{w: w, tty: isTerminal(w)}
}

// at reports the run at pct per cent; line says where it is.
func (p *progressLine) at(pct int, line string) {
	if p == nil {
		return
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%s", line)
		return
	}
	if pct%10 == 0 {
		fmt.Fprintln(p.w, line)
	}
}

// done ends the redrawn line.
func (p *progressLine) done() {
	if p != nil && p.tty {
		fmt.Fprintln(p.w)
	}
}

// isTerminal reports whether w is a character device, as a terminal is.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
