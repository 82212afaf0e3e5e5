package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
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

// termBar is a progress bar on stderr when it is a terminal, nothing otherwise; it
// appears at the first set, when the total is known.
type termBar struct {
	tty  bool
	opts []progressbar.Option
	bar  *progressbar.ProgressBar
}

// newTermBar is a bar with opts (description, units) besides the common ones.
func newTermBar(opts ...progressbar.Option) *termBar {
	return &termBar{tty: term.IsTerminal(int(os.Stderr.Fd())), opts: opts}
}

func (b *termBar) set(done, total int64) {
	if !b.tty {
		return
	}
	if b.bar == nil {
		b.bar = progressbar.NewOptions64(total, append([]progressbar.Option{progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionThrottle(100 * time.Millisecond), progressbar.OptionClearOnFinish()}, b.opts...)...)
	}
	_ = b.bar.Set64(done)
}

// images is set for progress counted in images.
func (b *termBar) images(done, total int) { b.set(int64(done), int64(total)) }

func (b *termBar) finish() {
	if b.bar != nil {
		_ = b.bar.Finish()
	}
}

// imageBar is a bar counting images, with their rate.
func imageBar(what string) *termBar {
	return newTermBar(progressbar.OptionSetDescription(what), progressbar.OptionShowCount(),
		progressbar.OptionShowIts(), progressbar.OptionSetItsString("img"))
}
