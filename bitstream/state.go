package bitstream

import "strings"

// State is the content of <sysfs>/class/fpga_manager/fpgaN/state.
type State string

// The states the Linux FPGA manager reports (drivers/fpga/fpga-mgr.c).
const (
	StateUnknown              State = "unknown"
	StatePowerOff             State = "power off"
	StatePowerUp              State = "power up"
	StateReset                State = "reset"
	StateFirmwareRequest      State = "firmware request"
	StateFirmwareRequestError State = "firmware request error"
	StateWriteInit            State = "write init"
	StateWriteInitError       State = "write init error"
	StateWrite                State = "write"
	StateWriteError           State = "write error"
	StateWriteComplete        State = "write complete"
	StateWriteCompleteError   State = "write complete error"
	StateOperating            State = "operating"
)

// parseState trims the newline sysfs appends.
func parseState(b []byte) State { return State(strings.TrimSpace(string(b))) }

type stateInfo struct {
	meaning string // what the state says, in words
	advice  string // what to do about it ("" when nothing)
}

var states = map[State]stateInfo{
	StateUnknown:         {"the FPGA manager does not know the FPGA's state", "load a bitstream; if this persists, check the driver in dmesg"},
	StatePowerOff:        {"the FPGA is powered off", "power the PL up (on Zynq: check the PL power rails and the devcfg driver in dmesg)"},
	StatePowerUp:         {"the FPGA is powered up but not configured", ""},
	StateReset:           {"the FPGA is held in reset", "load a bitstream"},
	StateFirmwareRequest: {"the kernel is reading the firmware file", ""},
	StateFirmwareRequestError: {"the kernel could not read the firmware file",
		"check that the .bin is in the firmware directory (/lib/firmware), readable, and that the name written has no directory part"},
	StateWriteInit: {"the FPGA manager is preparing the FPGA", ""},
	StateWriteInitError: {"the FPGA manager could not prepare the FPGA for configuration",
		"the data is likely not a byte-swapped .bin (convert with `pynqctl bit tobin`), or full/partial flags do not match the bitstream; see dmesg"},
	StateWrite: {"the configuration data is being written", ""},
	StateWriteError: {"writing the configuration data failed",
		"the .bin may be corrupt, truncated or built for another device; regenerate it and see dmesg"},
	StateWriteComplete: {"the configuration data is written, waiting for the FPGA to start", ""},
	StateWriteCompleteError: {"the FPGA did not signal DONE after configuration",
		"the bitstream is probably for another part or corrupt (check `pynqctl bit info`); see dmesg"},
	StateOperating: {"the FPGA is configured and running", ""},
}

// Describe says what the state means, in words.
func (s State) Describe() string {
	if i, ok := states[s]; ok {
		return i.meaning
	}
	return "state not known to this program"
}

// Advice says what to do about a failed or unusable state ("" when there is nothing to do).
func (s State) Advice() string {
	if i, ok := states[s]; ok {
		return i.advice
	}
	return "see dmesg for the FPGA manager's messages"
}

// Failed reports whether s is one of the "... error" states.
func (s State) Failed() bool { return strings.HasSuffix(string(s), " error") }
