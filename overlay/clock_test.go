package overlay

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// fakeSLCR models the SLCR's write protection: while locked, writes other than the
// unlock key are dropped. Writing the lock/unlock keys changes SLCR_LOCKSTA.
type fakeSLCR struct {
	*MemRegion
	locked    bool
	keyWrites []uint32 // values written to LOCK and UNLOCK, in order
}

func newFakeSLCR(t *testing.T, locked bool) *fakeSLCR {
	t.Helper()
	s := &fakeSLCR{MemRegion: NewMemRegion(slcrSize), locked: locked}
	// PYNQ-Z2 at boot: IO PLL x20 (1000 MHz), ARM PLL x26, DDR PLL x21; FCLK0 100 MHz.
	s.Poke(ioPLLCtrl, 20<<pllFDivShift)
	s.Poke(armPLLCtrl, 26<<pllFDivShift)
	s.Poke(ddrPLLCtrl, 21<<pllFDivShift)
	s.Poke(fclkOffset(0), 2<<20|5<<8)
	s.Poke(fclkOffset(1), 1<<20|7<<8)
	s.sync()
	return s
}

func (s *fakeSLCR) sync() {
	if s.locked {
		s.Poke(slcrLockSta, 1)
	} else {
		s.Poke(slcrLockSta, 0)
	}
}

func (s *fakeSLCR) Write32(off, v uint32) {
	switch {
	case off == slcrUnlock:
		s.keyWrites = append(s.keyWrites, v)
		if v == slcrUnlockKey {
			s.locked = false
		}
	case off == slcrLock:
		s.keyWrites = append(s.keyWrites, v)
		if v == slcrLockKey {
			s.locked = true
		}
	case !s.locked:
		s.MemRegion.Write32(off, v)
	}
	s.sync()
}

func TestClocksRead(t *testing.T) {
	s := newFakeSLCR(t, false)
	c := NewClocks(s)
	if got := c.PLLHz(IOPLL); got != 1000e6 {
		t.Errorf("IO PLL = %v", got)
	}
	if got := c.PLLHz(ARMPLL); got != 1300e6 {
		t.Errorf("ARM PLL = %v", got)
	}
	f0, err := c.FCLK(0)
	if err != nil {
		t.Fatal(err)
	}
	if f0.Source != IOPLL || f0.Divisor0 != 5 || f0.Divisor1 != 2 || f0.Hz() != 100e6 {
		t.Errorf("FCLK0 = %+v (%v Hz)", f0, f0.Hz())
	}
	// SRCSEL 10 selects the ARM PLL.
	s.Poke(fclkOffset(2), 1<<20|13<<8|2<<4)
	if f2, _ := c.FCLK(2); f2.Source != ARMPLL || f2.Hz() != 100e6 {
		t.Errorf("FCLK2 = %+v (%v Hz)", f2, f2.Hz())
	}
	// A bypassed PLL runs at PS_CLK.
	s.Poke(ddrPLLCtrl, 21<<pllFDivShift|pllBypassForce)
	if got := c.PLLHz(DDRPLL); got != DefaultPSClkHz {
		t.Errorf("bypassed DDR PLL = %v", got)
	}
	if _, err := c.FCLK(4); !errors.Is(err, ErrBadClock) {
		t.Errorf("FCLK(4) = %v", err)
	}
}

func TestSetFCLKUnlocksAndRelocks(t *testing.T) {
	s := newFakeSLCR(t, true)
	s.Poke(fclkOffset(0), s.Peek(fclkOffset(0))|1<<31) // an unrelated bit must survive
	c := NewClocks(s)
	got, err := c.SetFCLK(0, 50e6)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hz() != 50e6 || got.Divisor0*got.Divisor1 != 20 {
		t.Errorf("SetFCLK(50 MHz) = %+v (%v Hz)", got, got.Hz())
	}
	if !s.locked {
		t.Error("SLCR left unlocked, it was locked before")
	}
	if len(s.keyWrites) != 2 || s.keyWrites[0] != slcrUnlockKey || s.keyWrites[1] != slcrLockKey {
		t.Errorf("key writes = %#x, want unlock then lock", s.keyWrites)
	}
	if s.Peek(fclkOffset(0))&(1<<31) == 0 {
		t.Error("SetFCLK cleared a bit outside SRCSEL/DIVISOR0/DIVISOR1")
	}
}

func TestSetFCLKLeavesUnlockedSLCRUnlocked(t *testing.T) {
	// Linux keeps the SLCR unlocked; locking it would break the kernel's clock driver.
	s := newFakeSLCR(t, false)
	c := NewClocks(s)
	got, err := c.SetFCLK(1, 142.857e6)
	if err != nil {
		t.Fatal(err)
	}
	if got.Divisor0*got.Divisor1 != 7 || math.Abs(got.Hz()-1e9/7) > 1 {
		t.Errorf("SetFCLK(142.857 MHz) = %+v", got)
	}
	if s.locked || len(s.keyWrites) != 0 {
		t.Errorf("locked = %v, key writes = %#x; want untouched", s.locked, s.keyWrites)
	}
}

func TestSetFCLKErrors(t *testing.T) {
	c := NewClocks(newFakeSLCR(t, false))
	for _, hz := range []float64{0, -5, math.NaN(), math.Inf(1), 2e9} {
		if _, err := c.SetFCLK(0, hz); !errors.Is(err, ErrBadClock) {
			t.Errorf("SetFCLK(%v) = %v, want ErrBadClock", hz, err)
		}
	}
	if err := c.SetFCLKDivisors(0, IOPLL, 0, 1); !errors.Is(err, ErrBadClock) {
		t.Errorf("divisor 0: %v", err)
	}
	if err := c.SetFCLKDivisors(0, IOPLL, 64, 1); !errors.Is(err, ErrBadClock) {
		t.Errorf("divisor 64: %v", err)
	}
	if _, err := c.SetFCLK(-1, 1e6); !errors.Is(err, ErrBadClock) {
		t.Errorf("FCLK-1: %v", err)
	}
}

// stuckSLCR drops every write, as a locked SLCR whose unlock failed would.
type stuckSLCR struct{ *MemRegion }

func (stuckSLCR) Write32(uint32, uint32) {}

func TestSetFCLKDetectsIgnoredWrite(t *testing.T) {
	s := newFakeSLCR(t, false)
	c := NewClocks(stuckSLCR{s.MemRegion})
	err := c.SetFCLKDivisors(0, IOPLL, 10, 1)
	if err == nil || !strings.Contains(err.Error(), "is the SLCR locked?") {
		t.Errorf("SetFCLKDivisors on a stuck SLCR = %v", err)
	}
}

func TestApplyDesignClocks(t *testing.T) {
	d := loadReal(t)
	s := newFakeSLCR(t, true)
	c := NewClocks(s)
	if err := c.Apply(d); err != nil {
		t.Fatal(err)
	}
	for _, want := range d.Clocks {
		got, err := c.FCLK(want.Index)
		if err != nil {
			t.Fatal(err)
		}
		if got.Source != want.Source || got.Divisor0 != want.Divisor0 || got.Divisor1 != want.Divisor1 || got.Hz() != want.Hz() {
			t.Errorf("FCLK%d = %+v (%v Hz), want %+v (%v Hz)", want.Index, got, got.Hz(), want, want.Hz())
		}
	}
}

func TestOpenClocksThroughCheckedBus(t *testing.T) {
	var raw MemBus
	s := newFakeSLCR(t, false)
	raw.Add(SLCRBase, s.MemRegion)
	d := parseSmall(t)
	if _, err := OpenClocks(NewCheckedBus(&raw, d)); !errors.Is(err, ErrOutsideDesign) {
		t.Errorf("OpenClocks without SLCRRange = %v, want ErrOutsideDesign", err)
	}
	c, err := OpenClocks(NewCheckedBus(&raw, d, SLCRRange))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Apply(d); err != nil {
		t.Fatal(err)
	}
	if f1, _ := c.FCLK(1); f1.Source != ARMPLL || f1.Hz() != 325e6 {
		t.Errorf("FCLK1 after Apply = %+v (%v Hz)", f1, f1.Hz())
	}
}

func TestParsePLL(t *testing.T) {
	for s, want := range map[string]PLL{"IO PLL": IOPLL, "arm  pll": ARMPLL, "DDR PLL": DDRPLL} {
		if got, err := ParsePLL(s); err != nil || got != want {
			t.Errorf("ParsePLL(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParsePLL("EMIO"); err == nil {
		t.Error("ParsePLL(EMIO) succeeded")
	}
}

func FuzzParsePLL(f *testing.F) {
	for _, s := range []string{"IO PLL", "arm  pll", "DDRPLL", "", "IO\tPLL\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePLL(s)
		if err != nil {
			return
		}
		if q, err := ParsePLL(p.String()); err != nil || q != p {
			t.Fatalf("%q -> %v, which does not read back (%v, %v)", s, p, q, err)
		}
	})
}
