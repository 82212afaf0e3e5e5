package overlay

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
)

// Zynq-7000 SLCR (system level control registers) facts used for the PL clocks (Zynq-7000
// TRM, register reference; PYNQ's clocks module uses the same registers).
const (
	SLCRBase = 0xF8000000 // physical base of the SLCR block
	slcrSize = 0x1000     // the clock registers all sit in the first page

	slcrLock      = 0x004 // write slcrLockKey to lock
	slcrUnlock    = 0x008 // write slcrUnlockKey to unlock
	slcrLockSta   = 0x00C // bit 0: 1 while locked
	slcrLockKey   = 0x767B
	slcrUnlockKey = 0xDF0D

	armPLLCtrl = 0x100
	ddrPLLCtrl = 0x104
	ioPLLCtrl  = 0x108

	// FPGA0..3_CLK_CTRL at 0x170, 0x180, 0x190, 0x1A0.
	fpgaClkCtrl0   = 0x170
	fpgaClkStride  = 0x10
	fclkSrcSelMask = 0x3 << 4  // SRCSEL, bits 5:4
	fclkDiv0Mask   = 0x3F << 8 // DIVISOR0, bits 13:8
	fclkDiv1Mask   = 0x3F << 20
	maxDivisor     = 63 // both divisors are 6-bit fields

	pllFDivShift   = 12   // PLL_FDIV, bits 18:12
	pllFDivMask    = 0x7F // 7 bits after the shift
	pllBypassForce = 1 << 4

	// DefaultPSClkHz is the PS reference clock of PYNQ-Z1/Z2 boards (50 MHz crystal).
	DefaultPSClkHz = 50e6
)

// SLCRRange is the SLCR window as an address range, for NewCheckedBus: the .hwh does not
// list PS-internal blocks.
var SLCRRange = AddrRange{Instance: "ps7_slcr", Base: SLCRBase, High: SLCRBase + slcrSize - 1, Type: MemTypeRegister}

// PLL is one of the three PS PLLs a fabric clock can derive from.
type PLL int

const (
	IOPLL PLL = iota
	ARMPLL
	DDRPLL
)

func (p PLL) String() string {
	switch p {
	case IOPLL:
		return "IO PLL"
	case ARMPLL:
		return "ARM PLL"
	case DDRPLL:
		return "DDR PLL"
	}
	return fmt.Sprintf("PLL(%d)", int(p))
}

// ParsePLL reads the .hwh spelling of a clock source ("IO PLL", "ARM PLL", "DDR PLL").
func ParsePLL(s string) (PLL, error) {
	switch strings.ToUpper(strings.Join(strings.Fields(s), " ")) {
	case "IO PLL", "IOPLL":
		return IOPLL, nil
	case "ARM PLL", "ARMPLL":
		return ARMPLL, nil
	case "DDR PLL", "DDRPLL":
		return DDRPLL, nil
	}
	return IOPLL, fmt.Errorf("clock source %q is not IO PLL, ARM PLL or DDR PLL", s)
}

// srcSel is the FPGAn_CLK_CTRL SRCSEL encoding: 0x = IO PLL, 10 = ARM PLL, 11 = DDR PLL.
func (p PLL) srcSel() uint32 {
	switch p {
	case ARMPLL:
		return 2
	case DDRPLL:
		return 3
	}
	return 0
}

func pllFromSrcSel(v uint32) PLL {
	switch v & 3 {
	case 2:
		return ARMPLL
	case 3:
		return DDRPLL
	}
	return IOPLL
}

func (p PLL) ctrlOffset() uint32 {
	switch p {
	case ARMPLL:
		return armPLLCtrl
	case DDRPLL:
		return ddrPLLCtrl
	}
	return ioPLLCtrl
}

// Clocks reads and sets the PL fabric clocks FCLK0..3 through the SLCR.
type Clocks struct {
	r Region
	// RefHz is the PS reference clock (PS_CLK) the PLLs multiply; DefaultPSClkHz unless
	// changed.
	RefHz float64
	mu    sync.Mutex
}

// ErrBadClock reports an FCLK index, frequency or divisor the hardware cannot do.
var ErrBadClock = errors.New("invalid fabric clock request")

// OpenClocks maps the SLCR on bus (through a CheckedBus, include SLCRRange).
func OpenClocks(bus Bus) (*Clocks, error) {
	r, err := bus.Map(SLCRBase, slcrSize)
	if err != nil {
		return nil, fmt.Errorf("open PL clocks: %w", err)
	}
	return NewClocks(r), nil
}

// NewClocks uses an already mapped SLCR window (at least 0x1A4 bytes from SLCRBase).
func NewClocks(slcr Region) *Clocks {
	return &Clocks{r: slcr, RefHz: DefaultPSClkHz}
}

// Close unmaps the SLCR.
func (c *Clocks) Close() error { return c.r.Close() }

// PLLHz is the current output frequency of a PS PLL: PS_CLK * PLL_FDIV, or PS_CLK when
// the PLL is bypassed.
func (c *Clocks) PLLHz(p PLL) float64 {
	v := c.r.Read32(p.ctrlOffset())
	if v&pllBypassForce != 0 {
		return c.RefHz
	}
	return c.RefHz * float64(v>>pllFDivShift&pllFDivMask)
}

func checkFCLK(n int) error {
	if n < 0 || n > 3 {
		return fmt.Errorf("FCLK%d: %w: the PS has FCLK0..FCLK3", n, ErrBadClock)
	}
	return nil
}

func fclkOffset(n int) uint32 { return fpgaClkCtrl0 + uint32(n)*fpgaClkStride }

// FCLK reads the current setting of FCLKn; Hz is computed from the live PLL and
// divisors (f = PS_CLK * FDIV / (DIVISOR0 * DIVISOR1)). Enabled is always true: the
// SLCR has no per-clock enable (that lives in the .hwh).
func (c *Clocks) FCLK(n int) (Clock, error) {
	if err := checkFCLK(n); err != nil {
		return Clock{}, err
	}
	v := c.r.Read32(fclkOffset(n))
	src := pllFromSrcSel(v >> 4)
	clk := Clock{
		Index:    n,
		Enabled:  true,
		Source:   src,
		Divisor0: int(v >> 8 & 0x3F),
		Divisor1: int(v >> 20 & 0x3F),
		PLLMHz:   c.PLLHz(src) / 1e6,
	}
	return clk, nil
}

// SetFCLKDivisors programs FCLKn's source and divisors.
func (c *Clocks) SetFCLKDivisors(n int, src PLL, div0, div1 int) error {
	if err := checkFCLK(n); err != nil {
		return err
	}
	if div0 < 1 || div0 > maxDivisor || div1 < 1 || div1 > maxDivisor {
		return fmt.Errorf("FCLK%d divisors %d, %d: %w: each must be 1..%d", n, div0, div1, ErrBadClock, maxDivisor)
	}
	if src < IOPLL || src > DDRPLL {
		return fmt.Errorf("FCLK%d source %v: %w", n, src, ErrBadClock)
	}
	val := src.srcSel()<<4 | uint32(div0)<<8 | uint32(div1)<<20
	return c.modify(fclkOffset(n), fclkSrcSelMask|fclkDiv0Mask|fclkDiv1Mask, val)
}

// SetFCLK sets FCLKn as close to hz as the divisors allow, keeping its current source
// PLL, and returns the resulting setting.
func (c *Clocks) SetFCLK(n int, hz float64) (Clock, error) {
	cur, err := c.FCLK(n)
	if err != nil {
		return Clock{}, err
	}
	pll := cur.PLLMHz * 1e6
	d0, d1, err := chooseDivisors(pll, hz)
	if err != nil {
		return Clock{}, fmt.Errorf("FCLK%d from %v at %.3f MHz: %w", n, cur.Source, pll/1e6, err)
	}
	if err := c.SetFCLKDivisors(n, cur.Source, d0, d1); err != nil {
		return Clock{}, err
	}
	return c.FCLK(n)
}

// Apply programs every enabled fabric clock of the design (source and divisors), as
// loading its bitstream expects.
func (c *Clocks) Apply(d *Design) error {
	for _, clk := range d.Clocks {
		if !clk.Enabled {
			continue
		}
		if err := c.SetFCLKDivisors(clk.Index, clk.Source, clk.Divisor0, clk.Divisor1); err != nil {
			return fmt.Errorf("apply clocks of %s: %w", d.Name, err)
		}
	}
	return nil
}

// chooseDivisors finds the divisor pair whose quotient of pllHz is closest to hz.
func chooseDivisors(pllHz, hz float64) (div0, div1 int, err error) {
	if !(hz > 0) || math.IsInf(hz, 0) {
		return 0, 0, fmt.Errorf("%w: frequency %v Hz must be positive", ErrBadClock, hz)
	}
	if !(pllHz > 0) {
		return 0, 0, fmt.Errorf("%w: the source PLL reads 0 Hz", ErrBadClock)
	}
	if hz > pllHz {
		return 0, 0, fmt.Errorf("%w: %.3f MHz is above the PLL's %.3f MHz", ErrBadClock, hz/1e6, pllHz/1e6)
	}
	best := math.Inf(1)
	for a := 1; a <= maxDivisor; a++ {
		for b := 1; b <= maxDivisor; b++ {
			if e := math.Abs(pllHz/float64(a*b) - hz); e < best {
				best, div0, div1 = e, a, b
			}
		}
	}
	return div0, div1, nil
}

// modify does a read-modify-write of an SLCR register. The SLCR ignores writes while
// locked: unlock first, and lock again only if it was locked, since Linux leaves the
// SLCR unlocked and its own clock driver relies on that.
func (c *Clocks) modify(off, mask, val uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	locked := c.r.Read32(slcrLockSta)&1 != 0
	if locked {
		c.r.Write32(slcrUnlock, slcrUnlockKey)
	}
	want := c.r.Read32(off)&^mask | val&mask
	c.r.Write32(off, want)
	got := c.r.Read32(off)
	if locked {
		c.r.Write32(slcrLock, slcrLockKey)
	}
	if got&mask != want&mask {
		return fmt.Errorf("SLCR register 0x%03X reads 0x%08X after writing 0x%08X (is the SLCR locked?)", off, got, want)
	}
	return nil
}
