package qnndriver_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The board's driver and the simulation depend on what the engine is (quant/offload),
// not on the host reference engine or the ONNX code: a bug shared with the reference
// could not hide behind a bit-exact comparison, and the board binary stays small.
func TestDriverAndSimulationDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("-short (the ARM run under qemu-user): the import graph is the same on every architecture")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".", "../sim").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasSuffix(pkg, "/quant/qnnmo") || strings.Contains(pkg, "protobuf") || strings.Contains(pkg, "/quant/onnx") {
			t.Errorf("the driver or the simulation depends on %s", pkg)
		}
	}
}
