package flow_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The flow is host-side: the board daemon and its packages (agent, overlay) never
// import it, so the board binary does not carry the quantization tools.
func TestBoardDoesNotImportTheFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("-short (the ARM run under qemu-user): the import graph is the same on every architecture")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", "../../cmd/pynq-agent", "../../agent/...", "../../overlay/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasSuffix(pkg, "/quant/flow") {
			t.Errorf("the board side depends on %s", pkg)
		}
	}
}
