package overlay

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Design is what a Vivado hardware handoff (.hwh) file says about a bitstream: its IP
// modules, the address map the processor sees, the PL clocks and the interrupt lines.
type Design struct {
	Name       string // file name the design was read from (used in messages)
	Vivado     string // EDKSYSTEM VIVADOVERSION, e.g. "2017.4"
	Device     string // SYSTEMINFO DEVICE, e.g. "7z020"
	Package    string // SYSTEMINFO PACKAGE, e.g. "clg400"
	SpeedGrade string // SYSTEMINFO SPEEDGRADE, e.g. "-1"

	Modules []Module
	// AddressMap is the processing system's MEMORYMAP: every range the CPU can reach,
	// sorted by base address.
	AddressMap []AddrRange
	// Clocks are the PS7 FCLK0..3 settings; empty without a Zynq-7000 PS module.
	Clocks []Clock
	// Interrupts are the sources wired to the PS IRQ_F2P input, directly, through
	// xlconcat, or behind an axi_intc.
	Interrupts []Interrupt

	index map[string]int // instance -> position in Modules
}

// Module is one IP instance (a MODULE element).
type Module struct {
	Instance string // INSTANCE, e.g. "BlackBoxJam_0"
	FullName string // FULLNAME, e.g. "/BlackBoxJam_0"
	VLNV     string // VLNV, e.g. "xilinx.com:hls:BlackBoxJam:1.0"
	Type     string // MODTYPE, e.g. "BlackBoxJam", "axi_gpio", "processing_system7"
	Line     int    // line of the MODULE element

	Parameters    []Parameter
	AddressBlocks []AddressBlock
	Ports         []Port
	// MemoryMap is the module's own MEMORYMAP: the ranges its masters reach. For the
	// PS this is the CPU's address map (Design.AddressMap).
	MemoryMap []AddrRange

	params map[string]int // parameter name -> position in Parameters
}

// Parameter is a PARAMETER of a module.
type Parameter struct {
	Name, Value string
	Line        int
}

// AddressBlock is an ADDRESSBLOCK: a slave interface's register or memory window.
type AddressBlock struct {
	Name      string // NAME, e.g. "Reg"
	Interface string // INTERFACE, e.g. "s_axi_control"
	Range     uint64 // RANGE in bytes
	Usage     string // USAGE: "register" or "memory"
	Registers []Register
}

// Register is a REGISTER of an address block (its PROPERTY children flattened).
type Register struct {
	Name        string
	Description string
	Offset      uint32 // ADDRESS_OFFSET in bytes
	Size        int    // SIZE in bits
	Access      string // ACCESS, e.g. "read-write", "write-only"
	Fields      []Field
}

// Field is a FIELD of a register.
type Field struct {
	Name        string
	Description string
	Access      string
	BitOffset   int
	BitWidth    int
}

// Port is a PORT of a module with the ports it connects to.
type Port struct {
	Name        string // NAME
	Signal      string // SIGNAME: the net; connected ports share it
	Dir         string // DIR: "I", "O" or "IO"
	SigIs       string // SIGIS: "clk", "rst", "INTERRUPT", "undef", ...
	Sensitivity string // SENSITIVITY for interrupts, e.g. "LEVEL_HIGH"
	Left, Right int    // LEFT/RIGHT bit indices; both 0 for a scalar port
	Connections []Connection
}

// Width is the number of bits of the port.
func (p Port) Width() int {
	if p.Left >= p.Right {
		return p.Left - p.Right + 1
	}
	return p.Right - p.Left + 1
}

// Connection names the other end of a port's net.
type Connection struct {
	Instance, Port string
}

// MemType says whether an address range is memory or registers.
type MemType int

const (
	MemTypeRegister MemType = iota // MEMTYPE="REGISTER"
	MemTypeMemory                  // MEMTYPE="MEMORY"
)

func (t MemType) String() string {
	if t == MemTypeMemory {
		return "memory"
	}
	return "register"
}

// AddrRange is a MEMRANGE: an inclusive physical address window of one slave.
type AddrRange struct {
	Instance     string  // INSTANCE of the slave
	Base, High   uint64  // BASEVALUE, HIGHVALUE (inclusive)
	Type         MemType // MEMTYPE
	SlaveBus     string  // SLAVEBUSINTERFACE
	MasterBus    string  // MASTERBUSINTERFACE
	AddressBlock string  // ADDRESSBLOCK
	Line         int     // line of the MEMRANGE element in the .hwh
}

// Size is the number of bytes in the range.
func (r AddrRange) Size() uint64 { return r.High - r.Base + 1 }

// Contains reports whether [addr, addr+size) lies inside the range.
func (r AddrRange) Contains(addr, size uint64) bool {
	if size == 0 || addr < r.Base || addr > r.High {
		return false
	}
	return size-1 <= r.High-addr
}

// ParseError locates a problem in a .hwh file.
type ParseError struct {
	File string
	Line int
	Elem string // element (and attribute) the problem is in, "" for XML syntax errors
	Err  error
}

func (e *ParseError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Elem == "" {
		return fmt.Sprintf("%s: %v", loc, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", loc, e.Elem, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// LoadHWH reads and parses a .hwh file.
func LoadHWH(path string) (*Design, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open hardware handoff: %w", err)
	}
	defer f.Close()
	return ParseHWH(f, filepath.Base(path))
}

// ParseHWH parses a .hwh document; name is used in errors and Design.Name.
func ParseHWH(r io.Reader, name string) (*Design, error) {
	br := bufio.NewReader(r)
	if err := checkXML(br); err != nil {
		return nil, &ParseError{File: name, Line: 1, Err: err}
	}
	p := &hwhParser{d: &Design{Name: name}, dec: xml.NewDecoder(br), ctx: hwhCtx{-1, -1, -1, -1, -1}}
	// Vivado writes UTF-8; accept a declared charset without converting it rather than
	// failing on an unusual label.
	p.dec.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) { return in, nil }
	if err := p.run(); err != nil {
		return nil, err
	}
	if err := p.d.finish(); err != nil {
		return nil, err
	}
	return p.d, nil
}

// checkXML says what a file that is no XML document is, before the XML parser reports
// a confusing error deep inside it: most often the bitstream given for its .hwh.
func checkXML(br *bufio.Reader) error {
	head, _ := br.Peek(16)
	t := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case len(head) == 0:
		return errors.New("empty file, not a hardware handoff")
	case bytes.HasPrefix(head, []byte{0x00, 0x09, 0x0f, 0xf0}):
		return errors.New("this is a bitstream (.bit), not its hardware handoff: give the .hwh Vivado wrote beside it")
	case len(t) > 0 && t[0] != '<':
		return errors.New("not an XML document: a hardware handoff (.hwh) is Vivado's XML description of the block design")
	}
	return nil
}

// hwhCtx is the position in the element tree, as indices of the open objects (-1: none).
type hwhCtx struct {
	mod, block, reg, field, port int
}

type hwhParser struct {
	d     *Design
	dec   *xml.Decoder
	stack []string  // open element names
	saved []hwhCtx  // ctx before each open element
	ctx   hwhCtx    // current objects
	root  bool      // EDKSYSTEM seen
	line  int       // line of the current start element
	mods  []*Module // modules under construction (pointers stay valid while appending)
}

func (p *hwhParser) run() error {
	for {
		// RawToken skips namespace translation (the format has no namespaces); end tags
		// are matched against the stack here instead.
		tok, err := p.dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return p.syntaxErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			p.line, _ = p.dec.InputPos()
			p.saved = append(p.saved, p.ctx)
			if err := p.start(t); err != nil {
				return err
			}
			p.stack = append(p.stack, t.Name.Local)
		case xml.EndElement:
			n := len(p.stack) - 1
			if n < 0 || p.stack[n] != t.Name.Local {
				return p.mismatch(t.Name.Local)
			}
			p.stack, p.ctx, p.saved = p.stack[:n], p.saved[n], p.saved[:n]
		}
	}
	if n := len(p.stack); n > 0 {
		line, _ := p.dec.InputPos()
		return &ParseError{File: p.d.Name, Line: line, Err: fmt.Errorf("malformed xml: file ends inside <%s> (truncated?)", p.stack[n-1])}
	}
	if !p.root {
		return &ParseError{File: p.d.Name, Err: errors.New("no EDKSYSTEM element: not a Vivado hardware handoff file")}
	}
	p.d.Modules = make([]Module, len(p.mods))
	for i, m := range p.mods {
		p.d.Modules[i] = *m
	}
	return nil
}

func (p *hwhParser) syntaxErr(err error) error {
	line, _ := p.dec.InputPos()
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		line = se.Line
		err = errors.New(se.Msg)
	}
	return &ParseError{File: p.d.Name, Line: line, Err: fmt.Errorf("malformed xml: %w", err)}
}

func (p *hwhParser) mismatch(end string) error {
	line, _ := p.dec.InputPos()
	if len(p.stack) == 0 {
		return &ParseError{File: p.d.Name, Line: line, Err: fmt.Errorf("malformed xml: unexpected end element </%s>", end)}
	}
	open := p.stack[len(p.stack)-1]
	return &ParseError{File: p.d.Name, Line: line, Err: fmt.Errorf("malformed xml: element <%s> closed by </%s>", open, end)}
}

func (p *hwhParser) errf(elem, format string, args ...any) error {
	return &ParseError{File: p.d.Name, Line: p.line, Elem: elem, Err: fmt.Errorf(format, args...)}
}

// parent returns the name of the n-th enclosing element (1 = the parent).
func (p *hwhParser) parent(n int) string {
	if len(p.stack) < n {
		return ""
	}
	return p.stack[len(p.stack)-n]
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (p *hwhParser) start(se xml.StartElement) error {
	name := se.Name.Local
	if len(p.stack) == 0 {
		if p.root {
			return p.errf(name, "second root element after </EDKSYSTEM>")
		}
		if name != "EDKSYSTEM" {
			return p.errf(name, "root element is %s, want EDKSYSTEM (not a Vivado hardware handoff file)", name)
		}
		p.root = true
		p.d.Vivado = attr(se, "VIVADOVERSION")
		return nil
	}
	inModule := p.ctx.mod >= 0
	switch {
	case name == "SYSTEMINFO" && p.parent(1) == "EDKSYSTEM":
		p.d.Device, p.d.Package, p.d.SpeedGrade = attr(se, "DEVICE"), attr(se, "PACKAGE"), attr(se, "SPEEDGRADE")
	case name == "MODULE" && p.parent(1) == "MODULES":
		return p.startModule(se)
	case !inModule:
	case name == "PARAMETER" && p.parent(1) == "PARAMETERS" && p.parent(2) == "MODULE":
		m := p.mods[p.ctx.mod]
		pname := attr(se, "NAME")
		if m.params == nil {
			m.params = map[string]int{}
		}
		m.params[pname] = len(m.Parameters)
		m.Parameters = append(m.Parameters, Parameter{Name: pname, Value: attr(se, "VALUE"), Line: p.line})
	case name == "ADDRESSBLOCK" && p.parent(2) == "MODULE":
		return p.startBlock(se)
	case name == "REGISTER" && p.parent(1) == "REGISTERS" && p.ctx.block >= 0:
		b := &p.mods[p.ctx.mod].AddressBlocks[p.ctx.block]
		p.ctx.reg = len(b.Registers)
		b.Registers = append(b.Registers, Register{Name: attr(se, "NAME")})
	case name == "FIELD" && p.parent(1) == "FIELDS" && p.ctx.reg >= 0:
		r := p.register()
		p.ctx.field = len(r.Fields)
		r.Fields = append(r.Fields, Field{Name: attr(se, "NAME")})
	case name == "PROPERTY" && p.ctx.reg >= 0 && (p.parent(1) == "REGISTER" || p.parent(1) == "FIELD"):
		return p.property(se)
	case name == "PORT" && p.parent(1) == "PORTS" && p.parent(2) == "MODULE":
		return p.startPort(se)
	case name == "CONNECTION" && p.parent(1) == "CONNECTIONS" && p.ctx.port >= 0:
		pt := &p.mods[p.ctx.mod].Ports[p.ctx.port]
		pt.Connections = append(pt.Connections, Connection{Instance: attr(se, "INSTANCE"), Port: attr(se, "PORT")})
	case name == "MEMRANGE" && p.parent(1) == "MEMORYMAP" && p.parent(2) == "MODULE":
		return p.memRange(se)
	}
	return nil
}

func (p *hwhParser) register() *Register {
	return &p.mods[p.ctx.mod].AddressBlocks[p.ctx.block].Registers[p.ctx.reg]
}

func (p *hwhParser) startModule(se xml.StartElement) error {
	inst := attr(se, "INSTANCE")
	if inst == "" {
		return p.errf("MODULE", "no INSTANCE attribute")
	}
	p.ctx = hwhCtx{mod: len(p.mods), block: -1, reg: -1, field: -1, port: -1}
	p.mods = append(p.mods, &Module{
		Instance: inst,
		FullName: attr(se, "FULLNAME"),
		VLNV:     attr(se, "VLNV"),
		Type:     attr(se, "MODTYPE"),
		Line:     p.line,
	})
	return nil
}

func (p *hwhParser) startBlock(se xml.StartElement) error {
	m := p.mods[p.ctx.mod]
	b := AddressBlock{Name: attr(se, "NAME"), Interface: attr(se, "INTERFACE"), Usage: attr(se, "USAGE")}
	if s := attr(se, "RANGE"); s != "" {
		v, err := parseNum(s)
		if err != nil {
			return p.errf("ADDRESSBLOCK "+b.Name+" RANGE", "%q is not a number", s)
		}
		b.Range = v
	}
	p.ctx.block = len(m.AddressBlocks)
	m.AddressBlocks = append(m.AddressBlocks, b)
	return nil
}

// property stores a register or field PROPERTY; unknown properties are ignored.
func (p *hwhParser) property(se xml.StartElement) error {
	pname, val := attr(se, "NAME"), attr(se, "VALUE")
	r := p.register()
	num := func() (uint64, error) {
		v, err := parseNum(val)
		if err != nil {
			return 0, p.errf("PROPERTY "+pname+" of "+r.Name, "%q is not a number", val)
		}
		return v, nil
	}
	if p.ctx.field >= 0 && p.parent(1) == "FIELD" {
		f := &r.Fields[p.ctx.field]
		switch pname {
		case "DESCRIPTION":
			f.Description = val
		case "ACCESS":
			f.Access = val
		case "BIT_OFFSET", "BIT_WIDTH":
			v, err := num()
			if err != nil {
				return err
			}
			if v > 1024 {
				return p.errf("PROPERTY "+pname+" of "+f.Name, "%d bits is implausible", v)
			}
			if pname == "BIT_OFFSET" {
				f.BitOffset = int(v)
			} else {
				f.BitWidth = int(v)
			}
		}
		return nil
	}
	switch pname {
	case "DESCRIPTION":
		r.Description = val
	case "ACCESS":
		r.Access = val
	case "ADDRESS_OFFSET":
		v, err := num()
		if err != nil {
			return err
		}
		if v > 0xFFFFFFFF {
			return p.errf("PROPERTY ADDRESS_OFFSET of "+r.Name, "0x%X does not fit 32 bits", v)
		}
		r.Offset = uint32(v)
	case "SIZE":
		v, err := num()
		if err != nil {
			return err
		}
		if v > 1024 {
			return p.errf("PROPERTY SIZE of "+r.Name, "%d bits is implausible", v)
		}
		r.Size = int(v)
	}
	return nil
}

func (p *hwhParser) startPort(se xml.StartElement) error {
	m := p.mods[p.ctx.mod]
	pt := Port{
		Name:        attr(se, "NAME"),
		Signal:      attr(se, "SIGNAME"),
		Dir:         attr(se, "DIR"),
		SigIs:       attr(se, "SIGIS"),
		Sensitivity: attr(se, "SENSITIVITY"),
	}
	for _, a := range []struct {
		name string
		dst  *int
	}{{"LEFT", &pt.Left}, {"RIGHT", &pt.Right}} {
		s := attr(se, a.name)
		if s == "" {
			continue
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > 1<<20 {
			return p.errf("PORT "+pt.Name+" "+a.name, "%q is not a bit index", s)
		}
		*a.dst = v
	}
	p.ctx.port = len(m.Ports)
	m.Ports = append(m.Ports, pt)
	return nil
}

func (p *hwhParser) memRange(se xml.StartElement) error {
	r := AddrRange{
		Instance:     attr(se, "INSTANCE"),
		SlaveBus:     attr(se, "SLAVEBUSINTERFACE"),
		MasterBus:    attr(se, "MASTERBUSINTERFACE"),
		AddressBlock: attr(se, "ADDRESSBLOCK"),
	}
	elem := "MEMRANGE " + r.Instance
	r.Line = p.line
	var err error
	base, high := attr(se, "BASEVALUE"), attr(se, "HIGHVALUE")
	if r.Base, err = parseNum(base); err != nil {
		return p.errf(elem+" BASEVALUE", "%q is not an address", base)
	}
	if r.High, err = parseNum(high); err != nil {
		return p.errf(elem+" HIGHVALUE", "%q is not an address", high)
	}
	if r.High < r.Base {
		return p.errf(elem, "HIGHVALUE %s is below BASEVALUE %s", high, base)
	}
	switch t := attr(se, "MEMTYPE"); strings.ToUpper(t) {
	case "MEMORY":
		r.Type = MemTypeMemory
	case "REGISTER", "":
		r.Type = MemTypeRegister
	default:
		return p.errf(elem+" MEMTYPE", "%q is neither MEMORY nor REGISTER", t)
	}
	m := p.mods[p.ctx.mod]
	m.MemoryMap = append(m.MemoryMap, r)
	return nil
}

// parseNum reads a hex ("0x...") or decimal number. Decimal numbers with leading zeros
// stay decimal (strconv's base 0 would read them as octal).
func parseNum(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		return strconv.ParseUint(s[2:], 16, 64)
	}
	return strconv.ParseUint(s, 10, 64)
}

// Param returns the value of the module's parameter name.
func (m *Module) Param(name string) (string, bool) {
	i, ok := m.params[name]
	if !ok {
		return "", false
	}
	return m.Parameters[i].Value, true
}

// parameter returns the whole parameter (with its line) for error messages.
func (m *Module) parameter(name string) (Parameter, bool) {
	i, ok := m.params[name]
	if !ok {
		return Parameter{}, false
	}
	return m.Parameters[i], true
}

// Port returns the module's port by name.
func (m *Module) Port(name string) (*Port, bool) {
	for i := range m.Ports {
		if m.Ports[i].Name == name {
			return &m.Ports[i], true
		}
	}
	return nil, false
}

// Register returns the register called name in any of the module's address blocks.
func (m *Module) Register(name string) (*Register, bool) {
	for i := range m.AddressBlocks {
		b := &m.AddressBlocks[i]
		for j := range b.Registers {
			if b.Registers[j].Name == name {
				return &b.Registers[j], true
			}
		}
	}
	return nil, false
}

// Module returns the module with the given INSTANCE name.
func (d *Design) Module(instance string) (*Module, bool) {
	i, ok := d.index[instance]
	if !ok {
		return nil, false
	}
	return &d.Modules[i], true
}

// FindByVLNV returns the modules whose VLNV starts with prefix, e.g.
// "xilinx.com:ip:axi_gpio:" or "xilinx.com:hls:BlackBoxJam:1.0".
func (d *Design) FindByVLNV(prefix string) []*Module {
	var out []*Module
	for i := range d.Modules {
		if strings.HasPrefix(d.Modules[i].VLNV, prefix) {
			out = append(out, &d.Modules[i])
		}
	}
	return out
}

// Range returns the CPU-visible address range of an instance (its first one, by base
// address, when it has several).
func (d *Design) Range(instance string) (AddrRange, bool) {
	for _, r := range d.AddressMap {
		if r.Instance == instance {
			return r, true
		}
	}
	return AddrRange{}, false
}

// PS returns the processing-system module (processing_system7 or a Zynq UltraScale+
// PS), if the design has one.
func (d *Design) PS() (*Module, bool) {
	for i := range d.Modules {
		if isPS(&d.Modules[i]) {
			return &d.Modules[i], true
		}
	}
	return nil, false
}

func isPS(m *Module) bool {
	return m.Type == "processing_system7" || strings.HasPrefix(m.Type, "zynq_ultra_ps_e")
}

// The Zynq-7000's PL windows: what the PS reaches through M_AXI_GP0 and M_AXI_GP1.
var plWindows = []AddrRange{
	{Instance: "M_AXI_GP0", Base: 0x4000_0000, High: 0x7FFF_FFFF},
	{Instance: "M_AXI_GP1", Base: 0x8000_0000, High: 0xBFFF_FFFF},
}

// checkPLWindows refuses a Zynq-7000 design whose PS address map puts a slave outside
// the PL windows: the agent maps these ranges through /dev/mem, and one in DDR or the
// PS's own registers (say 0x00100000) would let register writes land on memory the
// kernel owns.
func (d *Design) checkPLWindows() error {
	for _, r := range d.AddressMap {
		if !slices.ContainsFunc(plWindows, func(w AddrRange) bool { return w.Contains(r.Base, r.Size()) }) {
			return &ParseError{File: d.Name, Line: r.Line, Elem: "MEMRANGE " + r.Instance,
				Err: fmt.Errorf("0x%08X-0x%08X lies outside the Zynq-7000's PL windows (M_AXI_GP0 0x40000000-0x7FFFFFFF, M_AXI_GP1 0x80000000-0xBFFFFFFF): not a PL design's address map", r.Base, r.High)}
		}
	}
	return nil
}

// finish builds the index and derives the address map, clocks and interrupts.
func (d *Design) finish() error {
	d.index = make(map[string]int, len(d.Modules))
	for i, m := range d.Modules {
		if _, dup := d.index[m.Instance]; dup {
			return &ParseError{File: d.Name, Line: m.Line, Elem: "MODULE " + m.Instance, Err: errors.New("instance name appears twice")}
		}
		d.index[m.Instance] = i
	}
	ps, ok := d.PS()
	if !ok {
		return nil
	}
	d.AddressMap = slices.Clone(ps.MemoryMap)
	slices.SortStableFunc(d.AddressMap, func(a, b AddrRange) int { return cmp.Compare(a.Base, b.Base) })
	if ps.Type != "processing_system7" {
		return nil
	}
	if err := d.checkPLWindows(); err != nil {
		return err
	}
	clocks, err := d.ps7Clocks(ps)
	if err != nil {
		return err
	}
	d.Clocks = clocks
	d.Interrupts = d.traceInterrupts(ps)
	return nil
}
