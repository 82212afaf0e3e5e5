package deploy

import (
	"strings"
	"testing"
)

// TestUnitMemoryLimit: the unit caps the Go heap so the agent fits a 512 MB board.
func TestUnitMemoryLimit(t *testing.T) {
	for _, withConfig := range []bool{false, true} {
		u := Unit(Layout{}, withConfig)
		env := strings.Index(u, "\nEnvironment=GOMEMLIMIT=160MiB\n")
		svc, exec := strings.Index(u, "[Service]"), strings.Index(u, "\nExecStart=")
		if env < 0 || !(svc < env && env < exec) {
			t.Errorf("unit (config %v) lacks Environment=GOMEMLIMIT=160MiB in [Service]:\n%s", withConfig, u)
		}
		if max := strings.Index(u, "\nMemoryMax=256M\n"); max < 0 || !(svc < max && max < exec) {
			t.Errorf("unit (config %v) lacks MemoryMax=256M in [Service]:\n%s", withConfig, u)
		}
	}
}
