package main

import (
	"io"
	"os"
)

// Small formatting helpers the commands share for what they print.

// progressWriter is w when it is a terminal, else nil (no progress bars): they
// redraw with carriage returns, which only clutter logs and files.
func progressWriter(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return w
}
