package overlay

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// smallHWH is a hand-written design in the shape Vivado writes: a PS7 with two FCLKs,
// GPIO, a DMA and an interrupt controller, and a xlconcat tree on IRQ_F2P:
//
//	IRQ_F2P[0]   <- btns.ip2intc_irpt
//	IRQ_F2P[2:1] <- concat_1 {dma.mm2s_introut, dma.s2mm_introut}
//	IRQ_F2P[3]   <- intc.irq, intc.intr[0] <- leds.ip2intc_irpt
const smallHWH = `<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<EDKSYSTEM EDWVERSION="1.2" VIVADOVERSION="2020.2">
  <SYSTEMINFO ARCH="zynq" DEVICE="7z020" NAME="base" PACKAGE="clg400" SPEEDGRADE="-1"/>
  <MODULES>
    <MODULE FULLNAME="/ps7_0" INSTANCE="ps7_0" MODTYPE="processing_system7" VLNV="xilinx.com:ip:processing_system7:5.5">
      <PARAMETERS>
        <PARAMETER NAME="PCW_FPGA_FCLK0_ENABLE" VALUE="1"/>
        <PARAMETER NAME="PCW_FPGA_FCLK1_ENABLE" VALUE="1"/>
        <PARAMETER NAME="PCW_FPGA_FCLK2_ENABLE" VALUE="0"/>
        <PARAMETER NAME="PCW_FCLK0_PERIPHERAL_DIVISOR0" VALUE="5"/>
        <PARAMETER NAME="PCW_FCLK0_PERIPHERAL_DIVISOR1" VALUE="2"/>
        <PARAMETER NAME="PCW_FCLK1_PERIPHERAL_DIVISOR0" VALUE="4"/>
        <PARAMETER NAME="PCW_FCLK1_PERIPHERAL_DIVISOR1" VALUE="1"/>
        <PARAMETER NAME="PCW_FCLK2_PERIPHERAL_DIVISOR0" VALUE="junk"/>
        <PARAMETER NAME="PCW_FCLK1_PERIPHERAL_CLKSRC" VALUE="ARM PLL"/>
        <PARAMETER NAME="PCW_FPGA0_PERIPHERAL_FREQMHZ" VALUE="100"/>
        <PARAMETER NAME="PCW_FPGA1_PERIPHERAL_FREQMHZ" VALUE="325"/>
        <PARAMETER NAME="PCW_IO_IO_PLL_FREQMHZ" VALUE="1000.000"/>
        <PARAMETER NAME="PCW_ARMPLL_CTRL_FBDIV" VALUE="26"/>
      </PARAMETERS>
      <PORTS>
        <PORT DIR="I" LEFT="3" NAME="IRQ_F2P" RIGHT="0" SENSITIVITY="LEVEL_HIGH" SIGIS="INTERRUPT" SIGNAME="concat_0_dout">
          <CONNECTIONS>
            <CONNECTION INSTANCE="concat_0" PORT="dout"/>
          </CONNECTIONS>
        </PORT>
      </PORTS>
      <MEMORYMAP>
        <MEMRANGE ADDRESSBLOCK="Reg" BASEVALUE="0x41210000" HIGHVALUE="0x4121FFFF" INSTANCE="leds" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="S_AXI"/>
        <MEMRANGE ADDRESSBLOCK="Reg" BASEVALUE="0x41200000" HIGHVALUE="0x4120FFFF" INSTANCE="btns" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="S_AXI"/>
        <MEMRANGE ADDRESSBLOCK="Mem0" BASEVALUE="0x40000000" HIGHVALUE="0x40001FFF" INSTANCE="bram" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="MEMORY" SLAVEBUSINTERFACE="S_AXI"/>
      </MEMORYMAP>
    </MODULE>
    <MODULE FULLNAME="/concat_0" INSTANCE="concat_0" MODTYPE="xlconcat" VLNV="xilinx.com:ip:xlconcat:2.1">
      <PARAMETERS>
        <PARAMETER NAME="NUM_PORTS" VALUE="3"/>
        <PARAMETER NAME="IN1_WIDTH" VALUE="2"/>
      </PARAMETERS>
      <PORTS>
        <PORT DIR="I" NAME="In0" SIGNAME="btns_ip2intc_irpt"><CONNECTIONS><CONNECTION INSTANCE="btns" PORT="ip2intc_irpt"/></CONNECTIONS></PORT>
        <PORT DIR="I" NAME="In1" SIGNAME="concat_1_dout"><CONNECTIONS><CONNECTION INSTANCE="concat_1" PORT="dout"/></CONNECTIONS></PORT>
        <PORT DIR="I" NAME="In2" SIGNAME="intc_irq"><CONNECTIONS><CONNECTION INSTANCE="intc" PORT="irq"/></CONNECTIONS></PORT>
        <PORT DIR="O" LEFT="3" NAME="dout" RIGHT="0" SIGNAME="concat_0_dout"><CONNECTIONS><CONNECTION INSTANCE="ps7_0" PORT="IRQ_F2P"/></CONNECTIONS></PORT>
      </PORTS>
    </MODULE>
    <MODULE FULLNAME="/concat_1" INSTANCE="concat_1" MODTYPE="xlconcat" VLNV="xilinx.com:ip:xlconcat:2.1">
      <PORTS>
        <PORT DIR="I" NAME="In0"><CONNECTIONS><CONNECTION INSTANCE="dma" PORT="mm2s_introut"/></CONNECTIONS></PORT>
        <PORT DIR="I" NAME="In1"><CONNECTIONS><CONNECTION INSTANCE="dma" PORT="s2mm_introut"/></CONNECTIONS></PORT>
        <PORT DIR="O" LEFT="1" NAME="dout" RIGHT="0"><CONNECTIONS><CONNECTION INSTANCE="concat_0" PORT="In1"/></CONNECTIONS></PORT>
      </PORTS>
    </MODULE>
    <MODULE FULLNAME="/dma" INSTANCE="dma" MODTYPE="axi_dma" VLNV="xilinx.com:ip:axi_dma:7.1">
      <PORTS>
        <PORT DIR="O" NAME="mm2s_introut" SIGIS="INTERRUPT"><CONNECTIONS><CONNECTION INSTANCE="concat_1" PORT="In0"/></CONNECTIONS></PORT>
        <PORT DIR="O" NAME="s2mm_introut" SIGIS="INTERRUPT"><CONNECTIONS><CONNECTION INSTANCE="concat_1" PORT="In1"/></CONNECTIONS></PORT>
      </PORTS>
    </MODULE>
    <MODULE FULLNAME="/intc" INSTANCE="intc" MODTYPE="axi_intc" VLNV="xilinx.com:ip:axi_intc:4.1">
      <PORTS>
        <PORT DIR="I" LEFT="0" NAME="intr" RIGHT="0"><CONNECTIONS><CONNECTION INSTANCE="leds" PORT="ip2intc_irpt"/></CONNECTIONS></PORT>
        <PORT DIR="O" NAME="irq"><CONNECTIONS><CONNECTION INSTANCE="concat_0" PORT="In2"/></CONNECTIONS></PORT>
      </PORTS>
    </MODULE>
    <MODULE FULLNAME="/btns" INSTANCE="btns" MODTYPE="axi_gpio" VLNV="xilinx.com:ip:axi_gpio:2.0">
      <PARAMETERS>
        <PARAMETER NAME="C_GPIO_WIDTH" VALUE="4"/>
        <PARAMETER NAME="C_IS_DUAL" VALUE="0"/>
        <PARAMETER NAME="C_INTERRUPT_PRESENT" VALUE="1"/>
      </PARAMETERS>
      <ADDRESSBLOCKS>
        <ADDRESSBLOCK ACCESS="read-write" INTERFACE="S_AXI" NAME="Reg" RANGE="0x10000" USAGE="register">
          <REGISTERS>
            <REGISTER NAME="GPIO_DATA">
              <PROPERTY NAME="ADDRESS_OFFSET" VALUE="0x0"/>
              <PROPERTY NAME="SIZE" VALUE="32"/>
              <PROPERTY NAME="ACCESS" VALUE="read-write"/>
              <FIELDS>
                <FIELD NAME="Channel_1_GPIO_DATA">
                  <PROPERTY NAME="BIT_OFFSET" VALUE="0"/>
                  <PROPERTY NAME="BIT_WIDTH" VALUE="4"/>
                  <PROPERTY NAME="ACCESS" VALUE="read-write"/>
                </FIELD>
              </FIELDS>
            </REGISTER>
            <REGISTER NAME="GPIO_TRI">
              <PROPERTY NAME="ADDRESS_OFFSET" VALUE="4"/>
              <PROPERTY NAME="SIZE" VALUE="32"/>
            </REGISTER>
          </REGISTERS>
        </ADDRESSBLOCK>
      </ADDRESSBLOCKS>
      <PORTS>
        <PORT DIR="O" NAME="ip2intc_irpt" SIGIS="INTERRUPT"><CONNECTIONS><CONNECTION INSTANCE="concat_0" PORT="In0"/></CONNECTIONS></PORT>
      </PORTS>
    </MODULE>
    <MODULE FULLNAME="/leds" INSTANCE="leds" MODTYPE="axi_gpio" VLNV="xilinx.com:ip:axi_gpio:2.0">
      <PARAMETERS>
        <PARAMETER NAME="C_GPIO_WIDTH" VALUE="4"/>
        <PARAMETER NAME="C_IS_DUAL" VALUE="1"/>
        <PARAMETER NAME="C_GPIO2_WIDTH" VALUE="2"/>
      </PARAMETERS>
      <PORTS>
        <PORT DIR="O" NAME="ip2intc_irpt" SIGIS="INTERRUPT"><CONNECTIONS><CONNECTION INSTANCE="intc" PORT="intr"/></CONNECTIONS></PORT>
      </PORTS>
    </MODULE>
  </MODULES>
</EDKSYSTEM>
`

func parseSmall(tb testing.TB) *Design {
	tb.Helper()
	d, err := ParseHWH(strings.NewReader(smallHWH), "small.hwh")
	if err != nil {
		tb.Fatalf("ParseHWH(small): %v", err)
	}
	return d
}

func TestParseHWHSmall(t *testing.T) {
	d := parseSmall(t)
	if d.Vivado != "2020.2" || d.Device != "7z020" || d.Package != "clg400" || d.SpeedGrade != "-1" {
		t.Errorf("system info = %q %q %q %q", d.Vivado, d.Device, d.Package, d.SpeedGrade)
	}
	if len(d.Modules) != 7 {
		t.Fatalf("%d modules, want 7", len(d.Modules))
	}
	gpios := d.FindByVLNV("xilinx.com:ip:axi_gpio:")
	if len(gpios) != 2 || gpios[0].Instance != "btns" || gpios[1].Instance != "leds" {
		t.Errorf("FindByVLNV(axi_gpio) = %v", gpios)
	}
	btns, ok := d.Module("btns")
	if !ok {
		t.Fatal("no module btns")
	}
	if v, _ := btns.Param("C_GPIO_WIDTH"); v != "4" {
		t.Errorf("btns C_GPIO_WIDTH = %q", v)
	}
	reg, ok := btns.Register("GPIO_TRI")
	if !ok || reg.Offset != 4 || reg.Size != 32 {
		t.Errorf("GPIO_TRI = %+v, %v", reg, ok)
	}
	data, _ := btns.Register("GPIO_DATA")
	if data == nil || len(data.Fields) != 1 || data.Fields[0].BitWidth != 4 || data.Fields[0].Access != "read-write" {
		t.Errorf("GPIO_DATA = %+v", data)
	}
	if b := btns.AddressBlocks; len(b) != 1 || b[0].Range != 0x10000 || b[0].Usage != "register" {
		t.Errorf("btns address blocks = %+v", b)
	}

	// The address map is sorted by base and keeps the memory/register distinction.
	wantMap := []struct {
		inst string
		base uint64
		typ  MemType
	}{{"bram", 0x40000000, MemTypeMemory}, {"btns", 0x41200000, MemTypeRegister}, {"leds", 0x41210000, MemTypeRegister}}
	if len(d.AddressMap) != len(wantMap) {
		t.Fatalf("address map = %+v", d.AddressMap)
	}
	for i, w := range wantMap {
		if r := d.AddressMap[i]; r.Instance != w.inst || r.Base != w.base || r.Type != w.typ {
			t.Errorf("address map[%d] = %+v, want %s at 0x%X (%v)", i, r, w.inst, w.base, w.typ)
		}
	}
	if r, ok := d.Range("bram"); !ok || r.Size() != 8192 {
		t.Errorf("Range(bram) = %+v, %v", r, ok)
	}
	if _, ok := d.Range("dma"); ok {
		t.Error("Range(dma) found a range the design does not map")
	}
}

func TestParseHWHClocks(t *testing.T) {
	d := parseSmall(t)
	if len(d.Clocks) != 3 {
		t.Fatalf("clocks = %+v, want FCLK0..2", d.Clocks)
	}
	c0, c1, c2 := d.Clocks[0], d.Clocks[1], d.Clocks[2]
	if !c0.Enabled || c0.Source != IOPLL || c0.Divisor0 != 5 || c0.Divisor1 != 2 || c0.Hz() != 100e6 || c0.RequestedMHz != 100 {
		t.Errorf("FCLK0 = %+v (%v Hz)", c0, c0.Hz())
	}
	// FCLK1 runs from the ARM PLL, whose frequency comes from FBDIV * 50 MHz.
	if c1.Source != ARMPLL || c1.PLLMHz != 1300 || c1.Hz() != 325e6 {
		t.Errorf("FCLK1 = %+v (%v Hz)", c1, c1.Hz())
	}
	// A disabled clock with a junk divisor is reported, not an error.
	if c2.Enabled {
		t.Errorf("FCLK2 = %+v, want disabled", c2)
	}
}

func TestParseHWHInterrupts(t *testing.T) {
	d := parseSmall(t)
	want := []Interrupt{
		{Instance: "btns", Port: "ip2intc_irpt", IRQF2P: 0, GIC: 61},
		{Instance: "dma", Port: "mm2s_introut", IRQF2P: 1, GIC: 62},
		{Instance: "dma", Port: "s2mm_introut", IRQF2P: 2, GIC: 63},
		{Instance: "intc", Port: "irq", IRQF2P: 3, GIC: 64},
		{Instance: "leds", Port: "ip2intc_irpt", IRQF2P: 3, GIC: 64, Controller: "intc", ControllerIndex: 0},
	}
	if len(d.Interrupts) != len(want) {
		t.Fatalf("interrupts = %+v\nwant %+v", d.Interrupts, want)
	}
	for i := range want {
		if d.Interrupts[i] != want[i] {
			t.Errorf("interrupt %d = %+v, want %+v", i, d.Interrupts[i], want[i])
		}
	}
}

func TestGICForIRQF2P(t *testing.T) {
	for _, c := range []struct{ bit, id int }{{0, 61}, {7, 68}, {8, 84}, {15, 91}} {
		if id, ok := GICForIRQF2P(c.bit); !ok || id != c.id {
			t.Errorf("GICForIRQF2P(%d) = %d, %v; want %d", c.bit, id, ok, c.id)
		}
	}
	if _, ok := GICForIRQF2P(16); ok {
		t.Error("GICForIRQF2P(16) ok, want out of range")
	}
}

func realHWHPath(tb testing.TB) string {
	tb.Helper()
	return testutil.Fixture(tb, "qnn-mo-pynq", "bitstream", "W1A3-pynqZ1-Z2.hwh")
}

func loadReal(tb testing.TB) *Design {
	tb.Helper()
	d, err := LoadHWH(realHWHPath(tb))
	if err != nil {
		tb.Fatalf("LoadHWH: %v", err)
	}
	return d
}

func TestParseHWHRealW1A3(t *testing.T) {
	d := loadReal(t)
	if d.Name != "W1A3-pynqZ1-Z2.hwh" || d.Device != "7z020" || d.Package != "clg400" {
		t.Errorf("design %q device %q package %q", d.Name, d.Device, d.Package)
	}
	var insts []string
	for _, m := range d.Modules {
		insts = append(insts, m.Instance)
	}
	want := "BlackBoxJam_0 axi_mem_intercon axi_mem_intercon_1 ps7 ps7_axi_periph rst_ps7_100M"
	if got := strings.Join(insts, " "); got != want {
		t.Errorf("modules = %s, want %s", got, want)
	}
	engines := d.FindByVLNV("xilinx.com:hls:BlackBoxJam:1.0")
	if len(engines) != 1 || engines[0].Instance != "BlackBoxJam_0" || engines[0].Type != "BlackBoxJam" {
		t.Fatalf("FindByVLNV(BlackBoxJam) = %+v", engines)
	}
	// The PS reaches only the engine's control registers.
	if len(d.AddressMap) != 1 {
		t.Fatalf("address map = %+v", d.AddressMap)
	}
	r := d.AddressMap[0]
	if r.Instance != "BlackBoxJam_0" || r.Base != 0x43C00000 || r.Size() != 64<<10 || r.Type != MemTypeRegister ||
		r.SlaveBus != "s_axi_control" || r.MasterBus != "M_AXI_GP0" {
		t.Errorf("engine range = %+v", r)
	}
	// Its masters see DDR through HP0 and HP2.
	if mm := engines[0].MemoryMap; len(mm) != 2 || mm[0].Type != MemTypeMemory || mm[0].SlaveBus != "S_AXI_HP0" || mm[1].SlaveBus != "S_AXI_HP2" || mm[0].High != 0x1FFFFFFF {
		t.Errorf("engine memory map = %+v", mm)
	}
	// Register offsets agree with DESIGN.md section 3.
	offsets := map[string]uint32{
		"CTRL": 0x00, "in1_V_1": 0x10, "in2_V_1": 0x1C, "out_V_1": 0x28, "doInit": 0x34, "layerType": 0x3C,
		"KernelDim": 0x44, "Stride": 0x4C, "IFMCh": 0x54, "OFMCh": 0x5C, "IFMDim": 0x64, "PaddedDim": 0x6C,
		"OFMDim": 0x74, "PoolInDim": 0x7C, "PoolOutDim": 0x84, "PoolStride": 0x8C,
	}
	for name, off := range offsets {
		reg, ok := engines[0].Register(name)
		if !ok || reg.Offset != off {
			t.Errorf("register %s = %+v, want offset 0x%X", name, reg, off)
		}
	}
	ctrl, _ := engines[0].Register("CTRL")
	if len(ctrl.Fields) < 2 || ctrl.Fields[1].Name != "AP_DONE" || ctrl.Fields[1].BitOffset != 1 || ctrl.Fields[1].Access != "read-only" {
		t.Errorf("CTRL fields = %+v", ctrl.Fields)
	}
	// FCLK0 (the engine's 100 MHz) and the three unused fabric clocks.
	wantHz := []float64{100e6, 1e9 / 7, 200e6, 1e9 / 6}
	if len(d.Clocks) != 4 {
		t.Fatalf("clocks = %+v", d.Clocks)
	}
	for i, c := range d.Clocks {
		if !c.Enabled || c.Source != IOPLL || math.Abs(c.Hz()-wantHz[i]) > 1 {
			t.Errorf("FCLK%d = %+v (%v Hz), want %v Hz", i, c, c.Hz(), wantHz[i])
		}
	}
	// The engine's interrupt output is not connected, and the PS has no IRQ_F2P port.
	if len(d.Interrupts) != 0 {
		t.Errorf("interrupts = %+v, want none", d.Interrupts)
	}
	if p, ok := engines[0].Port("ap_clk"); !ok || p.Signal != "ps7_FCLK_CLK0" || len(p.Connections) != 1 || p.Connections[0] != (Connection{"ps7", "FCLK_CLK0"}) {
		t.Errorf("ap_clk port = %+v", p)
	}
}

func TestParseHWHErrors(t *testing.T) {
	swap := func(old, new string) string {
		if !strings.Contains(smallHWH, old) {
			t.Fatalf("test setup: %q not in smallHWH", old)
		}
		return strings.Replace(smallHWH, old, new, 1)
	}
	lineOf := func(s string) string {
		i := strings.Index(smallHWH, s)
		return "small.hwh:" + strconv.Itoa(strings.Count(smallHWH[:i], "\n")+1) + ":"
	}
	for _, c := range []struct {
		name, doc string
		want      []string
	}{
		{"empty", "", []string{"small.hwh:1: empty file, not a hardware handoff"}},
		{"bitstream", "\x00\x09\x0f\xf0\x0f\xf0\x0f\xf0\x0f\xf0\x00\x00\x01a", []string{"small.hwh:1: this is a bitstream (.bit)", "give the .hwh"}},
		{"not xml", "# a README\n", []string{"small.hwh:1: not an XML document"}},
		{"blank", "\n  \n", []string{"small.hwh: no EDKSYSTEM element"}},
		{"other xml", `<?xml version="1.0"?><project/>`, []string{"small.hwh:1: project: root element is project"}},
		{"truncated", smallHWH[:len(smallHWH)/2], []string{"small.hwh:", "malformed xml", "unexpected EOF"}},
		{"truncated at a tag", smallHWH[:strings.Index(smallHWH, "</MODULES>")], []string{"small.hwh:", "file ends inside <MODULES> (truncated?)"}},
		{"mismatched end", swap("</PORTS>\n    </MODULE>\n    <MODULE FULLNAME=\"/concat_1\"", "</PORTX>\n    </MODULE>\n    <MODULE FULLNAME=\"/concat_1\""),
			[]string{"element <PORTS> closed by </PORTX>"}},
		{"two roots", smallHWH + "<EDKSYSTEM/>", []string{"second root element"}},
		{"bad base", swap(`BASEVALUE="0x41200000"`, `BASEVALUE="0x4120ZZ00"`),
			[]string{lineOf(`BASEVALUE="0x41200000"`), `MEMRANGE btns BASEVALUE: "0x4120ZZ00" is not an address`}},
		{"high below base", swap(`HIGHVALUE="0x4120FFFF"`, `HIGHVALUE="0x00000010"`),
			[]string{lineOf(`HIGHVALUE="0x4120FFFF"`), "MEMRANGE btns: HIGHVALUE 0x00000010 is below BASEVALUE"}},
		{"memtype", swap(`MEMTYPE="MEMORY"`, `MEMTYPE="ROM"`), []string{`MEMTYPE: "ROM" is neither`}},
		{"range in DDR", swap(`BASEVALUE="0x41200000" HIGHVALUE="0x4120FFFF"`, `BASEVALUE="0x00100000" HIGHVALUE="0x0010FFFF"`),
			[]string{lineOf(`BASEVALUE="0x41200000"`), "MEMRANGE btns: 0x00100000-0x0010FFFF lies outside the Zynq-7000's PL windows"}},
		{"range across the windows' end", swap(`BASEVALUE="0x41200000" HIGHVALUE="0x4120FFFF"`, `BASEVALUE="0xBFFF0000" HIGHVALUE="0xC000FFFF"`),
			[]string{"0xBFFF0000-0xC000FFFF lies outside"}},
		{"divisor", swap(`PCW_FCLK0_PERIPHERAL_DIVISOR1" VALUE="2"`, `PCW_FCLK0_PERIPHERAL_DIVISOR1" VALUE="0"`),
			[]string{lineOf(`PCW_FCLK0_PERIPHERAL_DIVISOR1`), `PARAMETER PCW_FCLK0_PERIPHERAL_DIVISOR1: value "0" is not an integer in 1..63`}},
		{"clock source", swap(`VALUE="ARM PLL"`, `VALUE="RING OSC"`), []string{`PARAMETER PCW_FCLK1_PERIPHERAL_CLKSRC: clock source "RING OSC"`}},
		{"register offset", swap(`"ADDRESS_OFFSET" VALUE="4"`, `"ADDRESS_OFFSET" VALUE="four"`),
			[]string{`PROPERTY ADDRESS_OFFSET of GPIO_TRI: "four" is not a number`}},
		{"port range", swap(`LEFT="3" NAME="IRQ_F2P"`, `LEFT="x" NAME="IRQ_F2P"`), []string{`PORT IRQ_F2P LEFT: "x" is not a bit index`}},
		{"duplicate", swap(`INSTANCE="dma" MODTYPE`, `INSTANCE="btns" MODTYPE`), []string{"MODULE btns: instance name appears twice"}},
		{"no instance", swap(`INSTANCE="dma" MODTYPE`, `MODTYPE`), []string{"MODULE: no INSTANCE attribute"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHWH(strings.NewReader(c.doc), "small.hwh")
			if err == nil {
				t.Fatal("no error")
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *ParseError", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadHWHMissing(t *testing.T) {
	_, err := LoadHWH("/nonexistent/x.hwh")
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "open hardware handoff") {
		t.Errorf("LoadHWH(missing) = %v", err)
	}
}

func FuzzParseHWH(f *testing.F) {
	f.Add([]byte(smallHWH))
	f.Add([]byte(smallHWH[:len(smallHWH)/3]))
	f.Add([]byte(`<EDKSYSTEM><MODULES><MODULE INSTANCE="a"><MEMORYMAP><MEMRANGE BASEVALUE="0x10" HIGHVALUE="0xF"/></MEMORYMAP></MODULE></MODULES></EDKSYSTEM>`))
	f.Add([]byte(`<EDKSYSTEM><MODULES><MODULE INSTANCE="p" MODTYPE="processing_system7"><PORTS><PORT NAME="IRQ_F2P"><CONNECTIONS><CONNECTION INSTANCE="c" PORT="dout"/></CONNECTIONS></PORT></PORTS></MODULE><MODULE INSTANCE="c" MODTYPE="xlconcat"><PORTS><PORT NAME="In0" DIR="I"><CONNECTIONS><CONNECTION INSTANCE="c" PORT="dout"/></CONNECTIONS></PORT></PORTS></MODULE></MODULES></EDKSYSTEM>`))
	// The real file seeds the corpus when the fixtures are there; the fuzz target runs
	// without them.
	real := filepath.Join(testutil.RepoRoot(f), "..", "shared", "fixtures", "qnn-mo-pynq", "bitstream", "W1A3-pynqZ1-Z2.hwh")
	if b, err := os.ReadFile(real); err == nil {
		// Small slices keep the fuzzer's minimization quick: the file's opening and the
		// start of the PS7 module.
		f.Add(b[:2048])
		if i := bytes.Index(b, []byte(`<MODULE CONFIGURABLE="TRUE" FULLNAME="/ps7"`)); i >= 0 {
			f.Add(b[i:min(len(b), i+2048)])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseHWH(bytes.NewReader(data), "fuzz.hwh")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.hwh") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		for _, r := range d.AddressMap {
			if r.High < r.Base {
				t.Errorf("range %+v ends before it starts", r)
			}
		}
		for _, m := range d.Modules {
			if got, ok := d.Module(m.Instance); !ok || got.Instance != m.Instance {
				t.Errorf("Module(%q) lookup failed", m.Instance)
			}
		}
	})
}

func BenchmarkParseHWH(b *testing.B) {
	data, err := os.ReadFile(realHWHPath(b))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHWH(bytes.NewReader(data), "W1A3-pynqZ1-Z2.hwh"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDesignSummary(t *testing.T) {
	s := parseSmall(t).Summary("small.hwh", true)
	if s.File != "small.hwh" || s.Device != "7z020" || len(s.Modules) != 7 || len(s.AddressMap) == 0 || len(s.Registers) == 0 {
		t.Errorf("summary %+v", s)
	}
	if r := s.AddressMap[0]; len(r.Base) != 10 || r.Size == 0 {
		t.Errorf("address map entry %+v", r)
	}
}
