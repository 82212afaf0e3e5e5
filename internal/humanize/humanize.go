// Package humanize formats quantities for people reading a command's output.
package humanize

import "fmt"

// Bytes is n bytes in B, KiB or MiB with one decimal.
func Bytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
