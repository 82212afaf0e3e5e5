package flow

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// lazyBar is a progress bar on w (nil: none) that appears only once a step has run
// for a second, so quick steps print nothing.
type lazyBar struct {
	w     io.Writer
	desc  string
	total int
	done  int
	start time.Time
	bar   *progressbar.ProgressBar
}

func newLazyBar(w io.Writer, total int, desc string) *lazyBar {
	return &lazyBar{w: w, desc: desc, total: total, start: time.Now()}
}

func (b *lazyBar) Add(n int) {
	b.done += n
	if b.w == nil {
		return
	}
	if b.bar == nil {
		if time.Since(b.start) < time.Second {
			return
		}
		b.bar = progressbar.NewOptions(b.total, progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetDescription(b.desc), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetWidth(30))
		_ = b.bar.Add(b.done)
		return
	}
	_ = b.bar.Add(n)
}

func (b *lazyBar) Finish() {
	if b.bar != nil {
		_ = b.bar.Finish()
		fmt.Fprintln(b.w)
		b.bar = nil
	}
}
