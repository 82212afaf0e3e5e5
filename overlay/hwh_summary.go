package overlay

import "fmt"

// Summary is a design at a glance, for people and scripts: what `pynqctl hwh info`
// prints (also its --json schema).
type Summary struct {
	File       string             `json:"file"`
	Device     string             `json:"device"`
	Package    string             `json:"package"`
	SpeedGrade string             `json:"speed_grade"`
	Vivado     string             `json:"vivado"`
	Modules    []SummaryModule    `json:"modules"`
	AddressMap []SummaryRange     `json:"address_map"`
	Clocks     []SummaryClock     `json:"clocks"`
	Interrupts []SummaryInterrupt `json:"interrupts"`
	Registers  []SummaryRegister  `json:"registers,omitempty"`
}

// SummaryModule is a module of the design.
type SummaryModule struct {
	Instance string `json:"instance"`
	Type     string `json:"type"`
	VLNV     string `json:"vlnv"`
}

// SummaryRange is a window of the address map.
type SummaryRange struct {
	Instance  string `json:"instance"`
	Base      string `json:"base"` // hex, as in the .hwh
	High      string `json:"high"`
	Size      uint64 `json:"size"`
	Type      string `json:"type"` // "register" or "memory"
	SlaveBus  string `json:"slave_bus"`
	MasterBus string `json:"master_bus"`
}

// SummaryClock is a PL clock.
type SummaryClock struct {
	Name         string  `json:"name"`
	Enabled      bool    `json:"enabled"`
	Source       string  `json:"source"`
	Divisor0     int     `json:"divisor0"`
	Divisor1     int     `json:"divisor1"`
	MHz          float64 `json:"mhz"`
	RequestedMHz float64 `json:"requested_mhz"`
}

// SummaryInterrupt is an interrupt wired to the PS.
type SummaryInterrupt struct {
	Instance        string `json:"instance"`
	Port            string `json:"port"`
	IRQF2P          int    `json:"irq_f2p"`
	GIC             int    `json:"gic"`
	Controller      string `json:"controller,omitempty"`
	ControllerIndex int    `json:"controller_index,omitempty"`
}

// SummaryRegister is a register of a module the CPU reaches.
type SummaryRegister struct {
	Instance string `json:"instance"`
	Name     string `json:"name"`
	Offset   string `json:"offset"`
	Bits     int    `json:"bits"`
	Access   string `json:"access"`
}

// Summary summarizes d, read from path; registers adds the registers of every module
// the CPU can reach.
func (d *Design) Summary(path string, registers bool) *Summary {
	info := &Summary{
		File: path, Device: d.Device, Package: d.Package, SpeedGrade: d.SpeedGrade, Vivado: d.Vivado,
		Modules: []SummaryModule{}, AddressMap: []SummaryRange{}, Clocks: []SummaryClock{}, Interrupts: []SummaryInterrupt{},
	}
	for _, m := range d.Modules {
		info.Modules = append(info.Modules, SummaryModule{Instance: m.Instance, Type: m.Type, VLNV: m.VLNV})
	}
	for _, r := range d.AddressMap {
		info.AddressMap = append(info.AddressMap, SummaryRange{
			Instance: r.Instance, Base: fmt.Sprintf("0x%08X", r.Base), High: fmt.Sprintf("0x%08X", r.High),
			Size: r.Size(), Type: r.Type.String(), SlaveBus: r.SlaveBus, MasterBus: r.MasterBus,
		})
		if m, ok := d.Module(r.Instance); ok && registers {
			for _, b := range m.AddressBlocks {
				for _, reg := range b.Registers {
					info.Registers = append(info.Registers, SummaryRegister{
						Instance: m.Instance, Name: reg.Name, Offset: fmt.Sprintf("0x%02X", reg.Offset),
						Bits: reg.Size, Access: reg.Access,
					})
				}
			}
		}
	}
	for _, c := range d.Clocks {
		info.Clocks = append(info.Clocks, SummaryClock{
			Name: fmt.Sprintf("FCLK%d", c.Index), Enabled: c.Enabled, Source: c.Source.String(),
			Divisor0: c.Divisor0, Divisor1: c.Divisor1, MHz: c.Hz() / 1e6, RequestedMHz: c.RequestedMHz,
		})
	}
	for _, i := range d.Interrupts {
		info.Interrupts = append(info.Interrupts, SummaryInterrupt{
			Instance: i.Instance, Port: i.Port, IRQF2P: i.IRQF2P, GIC: i.GIC,
			Controller: i.Controller, ControllerIndex: i.ControllerIndex,
		})
	}
	return info
}
