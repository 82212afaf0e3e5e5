package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/overlay"
)

func TestHWHInfo(t *testing.T) {
	path := testutil.Fixture(t, "qnn-mo-pynq", "bitstream", "W1A3-pynqZ1-Z2.hwh")
	out, err := runPynqctl(t, "hwh", "info", "--json", path)
	if err != nil {
		t.Fatal(err)
	}
	var info overlay.Summary
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if len(info.Modules) != 6 || info.Modules[0].VLNV != "xilinx.com:hls:BlackBoxJam:1.0" {
		t.Errorf("modules = %+v", info.Modules)
	}
	if len(info.AddressMap) != 1 || info.AddressMap[0].Base != "0x43C00000" || info.AddressMap[0].Size != 65536 || info.AddressMap[0].Type != "register" {
		t.Errorf("address map = %+v", info.AddressMap)
	}
	if len(info.Clocks) != 4 || info.Clocks[0].MHz != 100 || !info.Clocks[0].Enabled {
		t.Errorf("clocks = %+v", info.Clocks)
	}
	if info.Interrupts == nil || len(info.Interrupts) != 0 || info.Registers != nil {
		t.Errorf("interrupts = %#v, registers = %#v", info.Interrupts, info.Registers)
	}

	text, err := runPynqctl(t, "hwh", "info", "--registers", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"device:  7z020clg400-1 (Vivado 2017.4)",
		"0x43C00000  0x43C0FFFF  64K   register  BlackBoxJam_0  s_axi_control",
		"FCLK0  enabled  IO PLL / 5 / 2  = 100.000 MHz",
		"(none wired to the PS IRQ_F2P input)",
		"BlackBoxJam_0  0x8C    PoolStride",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
}

func TestHWHInfoErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.hwh")
	doc := "<EDKSYSTEM>\n<MODULES>\n<MODULE INSTANCE=\"ps7\" MODTYPE=\"processing_system7\">\n" +
		"<MEMORYMAP><MEMRANGE INSTANCE=\"x\" BASEVALUE=\"0xG\" HIGHVALUE=\"0x10\"/></MEMORYMAP>\n</MODULE></MODULES></EDKSYSTEM>\n"
	if err := os.WriteFile(bad, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runPynqctl(t, "hwh", "info", bad)
	if err == nil || !strings.Contains(err.Error(), `bad.hwh:4: MEMRANGE x BASEVALUE: "0xG" is not an address`) {
		t.Errorf("error = %v", err)
	}
	if _, err := runPynqctl(t, "hwh", "info", filepath.Join(t.TempDir(), "missing.hwh")); err == nil {
		t.Error("no error for a missing file")
	}
}
