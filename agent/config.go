package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// Backends.
const (
	BackendBoard = "board" // the PYNQ-Z2: FPGA manager, /dev/mem, zocl
	BackendSim   = "sim"   // the FPGA simulation (overlay/sim) in this process
	// BackendEmulated is an emulated board (QEMU, scripts/board-vm): the kernel's FPGA
	// manager loads the bitstream as on the board, and the PL it would configure (engine,
	// registers, DDR) is the simulation in this process, since an emulator has none.
	BackendEmulated = "emulated"
)

// Model kinds.
const (
	ModelQNN     = "qnn"     // a QNN-MO parameter directory: CPU first/last layers, engine in between
	ModelDarknet = "darknet" // a float darknet cfg + weights, all on the CPU
)

// Config is the daemon's configuration (the TOML file; see configs/pynq-agent.toml).
type Config struct {
	Backend string `toml:"backend"` // "board" | "sim" | "emulated"

	Bitstream BitstreamConfig `toml:"bitstream"`
	Model     ModelConfig     `toml:"model"`
	Source    SourceConfig    `toml:"source"`
	Server    ServerConfig    `toml:"server"`
	LED       LEDConfig       `toml:"led"`
	Log       LogConfig       `toml:"log"`
	Queues    QueueConfig     `toml:"queues"`
	Engine    EngineConfig    `toml:"engine"`
	Health    HealthConfig    `toml:"health"`
	Sim       SimConfig       `toml:"sim"`
	Limits    LimitsConfig    `toml:"limits"`
	Telemetry TelemetryConfig `toml:"telemetry"`

	// file is the path the config was read from ("" for built-in defaults); relative
	// paths inside it resolve against its directory.
	file string
	data []byte
}

// BitstreamConfig names the overlay.
type BitstreamConfig struct {
	Path string `toml:"path"` // the .bit
	HWH  string `toml:"hwh"`  // the .hwh; default: beside the .bit with the same base name
	// Engine selects the BlackBoxJam instance when the design has several; "" = the only one.
	Engine string `toml:"engine"`
	// PYNQStates are glob patterns of PYNQ's record of the loaded overlay
	// (pynq/pl_server/global_pl_state.json); when one appears or changes, another program
	// has reprogrammed the PL and the agent stops using the engine. Unset: the usual
	// PYNQ 3 install paths; [] checks only the FPGA manager's state (and telemetry's
	// FPGA-load probe where it runs).
	PYNQStates []string `toml:"pynq_state"`
}

// EngineConfig bounds the accelerator.
type EngineConfig struct {
	// Timeout bounds one engine run; the driver then gives up, resets the PL and the
	// frame fails.
	Timeout Duration `toml:"timeout"`
	// ReprogramAfter: this many engine runs failing in a row (resets did not help) makes
	// the agent program the bitstream again and reopen the engine, once per run of
	// failures; 0 never does. If the reprogram fails the agent reports itself unhealthy
	// and stops the watchdog pings, so systemd restarts it.
	ReprogramAfter int `toml:"reprogram_after"`
}

// HealthConfig says when the daemon reports itself unhealthy.
type HealthConfig struct {
	// Stall: frames taken but none finished for this long makes /healthz and /readyz
	// answer 503 and stops the systemd watchdog pings.
	Stall Duration `toml:"stall"`
}

// TelemetryConfig switches the kernel (eBPF) telemetry.
type TelemetryConfig struct {
	Enabled *bool `toml:"enabled"` // default true
}

// IsEnabled says whether telemetry starts (unset means yes).
func (t TelemetryConfig) IsEnabled() bool { return t.Enabled == nil || *t.Enabled }

// LimitsConfig sizes what the agent accepts to the board's memory.
type LimitsConfig struct {
	// MaxImagePixels bounds every image the agent decodes (source frames, /api/verify
	// uploads), checked from the header before any large allocation: decoding peaks
	// at about 20 bytes per pixel, so the default 4 MP stays inside the 160 MiB the
	// unit gives the agent. A larger image fails (the frame is skipped, the request
	// answered 4xx); the daemon goes on.
	MaxImagePixels int64 `toml:"max_image_pixels"`
}

// SimConfig tunes the FPGA simulation (backend "sim").
type SimConfig struct {
	// Faults to inject (see Fault): "engine-hang@N", "engine-hang-once@N",
	// "dma-error@N", "load-fail".
	Faults []string `toml:"faults"`

	synchronous bool // the engine runs inside its start (BenchBoard; sim.Config.Synchronous)
}

// SimFaults parses sim.faults.
func (c *Config) SimFaults() ([]Fault, error) {
	var out []Fault
	for _, s := range c.Sim.Faults {
		f, err := ParseFault(s)
		if err != nil {
			return nil, c.keyErr("sim.faults", "%v", err)
		}
		out = append(out, f)
	}
	return out, nil
}

// ModelConfig names the network and its post-processing.
type ModelConfig struct {
	Kind    string   `toml:"kind"`    // "qnn" (default) | "darknet"
	Dir     string   `toml:"dir"`     // qnn: the parameter directory
	Cfg     string   `toml:"cfg"`     // darknet: .cfg
	Weights string   `toml:"weights"` // darknet: .weights
	Names   string   `toml:"names"`   // class names, one per line
	Thresh  float64  `toml:"thresh"`  // detection threshold (0,1)
	NMS     float64  `toml:"nms"`     // NMS overlap threshold (0,1]
	Classes []string `toml:"classes"` // class filter; empty = all
	Threads int      `toml:"threads"` // CPU goroutines per layer; 0 = all cores
}

// SourceConfig is where frames come from.
type SourceConfig struct {
	// Input is a directory, a glob, an image file, an http(s):// MJPEG stream or
	// still-image URL, a V4L2 device (/dev/videoN), or synthetic scenes (synth:SEED).
	Input  string   `toml:"input"`
	FPS    float64  `toml:"fps"`    // frame limit; 0: files as fast as the pipeline takes them, cameras at their rate
	Loop   *bool    `toml:"loop"`   // files: start over at the end (default true)
	Width  int      `toml:"width"`  // V4L2 capture size; synth: frame size
	Height int      `toml:"height"` // V4L2 capture size; synth: frame size
	Format string   `toml:"format"` // V4L2 pixel format: "mjpeg" | "yuyv" (default mjpeg)
	Retry  Duration `toml:"retry"`  // first retry delay after a source fails
	// RetryMax caps the doubling retry delay.
	RetryMax Duration `toml:"retry_max"`
	// StallTimeout reopens a live source (camera, stream) that sends nothing for this
	// long; 0 disables it.
	StallTimeout Duration `toml:"stall_timeout"`
}

// ServerConfig is the HTTP side.
type ServerConfig struct {
	Listen         string   `toml:"listen"`
	Token          string   `toml:"token"`
	TokenFile      string   `toml:"token_file"`
	AllowedOrigins []string `toml:"allowed_origins"`
	// MaxViewers caps the feed's viewers (more are refused with 503); MaxConnections
	// caps open TCP connections (at the cap the longest-idle one is closed to make room;
	// with all busy, more wait in the kernel's backlog).
	MaxViewers     int `toml:"max_viewers"`
	MaxConnections int `toml:"max_connections"`
	// JPEGQuality is the quality of the frames the feed encodes; a JPEG source's frames
	// (MJPEG cameras and streams) go to viewers as the source encoded them.
	JPEGQuality  int      `toml:"jpeg_quality"`
	ShutdownWait Duration `toml:"shutdown_timeout"`
}

// LEDConfig names an optional status LED on an AXI GPIO of the overlay.
type LEDConfig struct {
	Instance string `toml:"instance"` // AXI GPIO instance in the .hwh; "" = no LED
	Channel  int    `toml:"channel"`  // 1 or 2
	Pin      int    `toml:"pin"`      // bit of the channel
}

// LogConfig sets up logging.
type LogConfig struct {
	Level  string `toml:"level"`  // debug | info | warn | error
	Format string `toml:"format"` // text | json
}

// QueueConfig sizes the pipeline's queues.
type QueueConfig struct {
	Frames int `toml:"frames"` // captured frames waiting for the CPU stages (drop-oldest)
	Engine int `toml:"engine"` // prepared frames waiting for the engine (1: the CPU works one frame ahead)
	Output int `toml:"output"` // engine results waiting for the last layer
}

// Duration is a TOML string like "500ms" or "2s".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (want e.g. \"500ms\", \"2s\")", b)
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults are the values of keys a config leaves out.
func Defaults() *Config {
	loop := true
	return &Config{
		Backend: BackendBoard,
		Model:   ModelConfig{Kind: ModelQNN, Thresh: 0.3, NMS: boxes.DarknetNMS},
		Source:  SourceConfig{Loop: &loop, Format: "mjpeg", Retry: Duration{500 * time.Millisecond}, RetryMax: Duration{30 * time.Second}, StallTimeout: Duration{10 * time.Second}},
		Server:  ServerConfig{Listen: "127.0.0.1:8080", JPEGQuality: 75, ShutdownWait: Duration{5 * time.Second}, MaxViewers: 32, MaxConnections: 256},
		LED:     LEDConfig{Channel: 1},
		Log:     LogConfig{Level: "info", Format: "text"},
		Queues:  QueueConfig{Frames: 2, Engine: 1, Output: 1},
		Engine:  EngineConfig{Timeout: Duration{10 * time.Second}, ReprogramAfter: 3},
		Limits:  LimitsConfig{MaxImagePixels: 4 << 20},
		Health:  HealthConfig{Stall: Duration{30 * time.Second}},
	}
}

// ConfigError is a bad key or value, with where it is.
type ConfigError struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key path
	Msg  string
}

func (e *ConfigError) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", where, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", where, e.Key, e.Msg)
}

var tomlErrRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)

// LoadConfig reads a TOML config over the defaults. Unknown keys and bad values are
// errors naming the key and its line.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(data, path)
}

// ParseConfig is LoadConfig on bytes; name is used in messages and to resolve relative
// paths.
func ParseConfig(data []byte, name string) (*Config, error) {
	c := Defaults()
	c.file, c.data = name, data
	md, err := toml.Decode(string(data), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &ConfigError{File: name, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		}
		// Type mismatches come as text: "toml: line N (last key "k"): message".
		if m := tomlErrRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			if line == 0 {
				line = keyLine(data, m[2])
			}
			return nil, &ConfigError{File: name, Line: line, Key: m[2], Msg: m[3]}
		}
		return nil, &ConfigError{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0].String()
		return nil, c.keyErr(k, "unknown key (see configs/pynq-agent.toml for the keys)")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// keyErr builds a ConfigError for a dotted key, finding its line in the file.
func (c *Config) keyErr(key, format string, args ...any) error {
	return &ConfigError{File: c.fileName(), Line: keyLine(c.data, key), Key: key, Msg: fmt.Sprintf(format, args...)}
}

func (c *Config) fileName() string {
	if c.file == "" {
		return "config"
	}
	return c.file
}

// keyLine finds the line where a dotted key (as toml.Key.String prints it) is set: a
// "key =" line inside the key's table, or the table header itself. 0 when not found
// (e.g. a default value, or a form this scanner does not follow, like inline tables).
func keyLine(data []byte, key string) int {
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			h, _, _ := strings.Cut(line, "#")
			cur = normalizeKey(strings.Trim(strings.TrimSpace(h), "[]"))
			if cur == key {
				return n
			}
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		full := normalizeKey(k)
		if cur != "" {
			full = cur + "." + full
		}
		if full == key {
			return n
		}
	}
	return 0
}

// normalizeKey removes spaces and quotes around dotted key parts.
func normalizeKey(k string) string {
	parts := strings.Split(strings.TrimSpace(k), ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

// Validate checks values and reports the first bad one with its key and line.
func (c *Config) Validate() error {
	switch c.Backend {
	case BackendBoard, BackendSim, BackendEmulated:
	default:
		return c.keyErr("backend", "%q is not a backend (want \"board\", \"sim\" or \"emulated\")", c.Backend)
	}
	m := &c.Model
	switch m.Kind {
	case ModelQNN:
		if m.Cfg != "" || m.Weights != "" {
			return c.keyErr("model.cfg", "cfg/weights are for kind = \"darknet\"; a qnn model is a parameter directory (model.dir)")
		}
	case ModelDarknet:
		if m.Dir != "" {
			return c.keyErr("model.dir", "dir is for kind = \"qnn\"; a darknet model is cfg + weights")
		}
		if (m.Cfg == "") != (m.Weights == "") {
			return c.keyErr("model.weights", "a darknet model needs both cfg and weights")
		}
	default:
		return c.keyErr("model.kind", "%q is not a model kind (want \"qnn\" or \"darknet\")", m.Kind)
	}
	if !(m.Thresh > 0 && m.Thresh < 1) {
		return c.keyErr("model.thresh", "%v must be between 0 and 1", m.Thresh)
	}
	if !(m.NMS > 0 && m.NMS <= 1) {
		return c.keyErr("model.nms", "%v must be in (0, 1]", m.NMS)
	}
	if m.Threads < 0 {
		return c.keyErr("model.threads", "%d must be >= 0 (0 = all cores)", m.Threads)
	}
	s := &c.Source
	if s.FPS < 0 || s.FPS > 1000 {
		return c.keyErr("source.fps", "%v must be in [0, 1000] (0 = no limit)", s.FPS)
	}
	if s.Width < 0 || s.Height < 0 || s.Width > 8192 || s.Height > 8192 {
		return c.keyErr("source.width", "capture size %dx%d out of range", s.Width, s.Height)
	}
	if n := c.Limits.MaxImagePixels; n < 64*64 || n > imageio.DefaultMaxPixels {
		return c.keyErr("limits.max_image_pixels", "%d must be %d..%d", n, 64*64, imageio.DefaultMaxPixels)
	}
	if int64(s.Width)*int64(s.Height) > c.Limits.MaxImagePixels {
		return c.keyErr("source.width", "capture size %dx%d is more than limits.max_image_pixels %d", s.Width, s.Height, c.Limits.MaxImagePixels)
	}
	switch strings.ToLower(s.Format) {
	case "mjpeg", "yuyv":
	default:
		return c.keyErr("source.format", "%q is not a capture format (want \"mjpeg\" or \"yuyv\")", s.Format)
	}
	if s.Retry.Duration <= 0 || s.RetryMax.Duration < s.Retry.Duration {
		return c.keyErr("source.retry", "retry %v and retry_max %v must be positive with retry <= retry_max", s.Retry, s.RetryMax)
	}
	if faults, err := c.SimFaults(); err != nil {
		return err
	} else if len(faults) > 0 && c.Backend != BackendSim {
		return c.keyErr("sim.faults", "fault injection needs backend = \"sim\"")
	}
	if c.Engine.Timeout.Duration <= 0 {
		return c.keyErr("engine.timeout", "must be positive")
	}
	if c.Engine.ReprogramAfter < 0 {
		return c.keyErr("engine.reprogram_after", "must be 0 (never) or a count of failed runs")
	}
	if st := c.Health.Stall.Duration; st <= c.Engine.Timeout.Duration {
		return c.keyErr("health.stall", "%v must be longer than engine.timeout %v (a run may take that long)", st, c.Engine.Timeout)
	}
	if s.StallTimeout.Duration < 0 {
		return c.keyErr("source.stall_timeout", "must not be negative (0 disables it)")
	}
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		return c.keyErr("server.listen", "%q is not host:port: %v", c.Server.Listen, err)
	}
	if c.Server.Token != "" && c.Server.TokenFile != "" {
		return c.keyErr("server.token_file", "give token or token_file, not both")
	}
	if t := c.Server.Token; t != "" && len(t) < MinTokenLen {
		return c.keyErr("server.token", "%d characters: %s", len(t), tokenHint)
	}
	if q := c.Server.JPEGQuality; q < 1 || q > 100 {
		return c.keyErr("server.jpeg_quality", "%d must be 1..100", q)
	}
	if v := c.Server.MaxViewers; v < 1 || v > 1024 {
		return c.keyErr("server.max_viewers", "%d must be 1..1024", v)
	}
	if n := c.Server.MaxConnections; n < c.Server.MaxViewers+8 || n > 65536 {
		return c.keyErr("server.max_connections", "%d must be at least server.max_viewers + 8 (%d; viewers hold one each and the API needs some) and at most 65536", n, c.Server.MaxViewers+8)
	}
	if c.Server.ShutdownWait.Duration <= 0 {
		return c.keyErr("server.shutdown_timeout", "must be positive")
	}
	if c.LED.Instance != "" && (c.LED.Channel < 1 || c.LED.Channel > 2 || c.LED.Pin < 0 || c.LED.Pin > 31) {
		return c.keyErr("led.pin", "channel %d pin %d: channel must be 1 or 2, pin 0..31", c.LED.Channel, c.LED.Pin)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		return c.keyErr("log.level", "%v", err)
	}
	if f := c.Log.Format; f != "text" && f != "json" {
		return c.keyErr("log.format", "%q: want \"text\" or \"json\"", f)
	}
	for _, q := range []struct {
		key string
		n   int
	}{{"queues.frames", c.Queues.Frames}, {"queues.engine", c.Queues.Engine}, {"queues.output", c.Queues.Output}} {
		if q.n < 1 || q.n > 64 {
			return c.keyErr(q.key, "%d must be 1..64", q.n)
		}
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not a log level (want debug, info, warn or error)", s)
	}
	return l, nil
}

// NewLogger builds the one logger of the process from the log settings.
func (c *Config) NewLogger(w *os.File) *slog.Logger {
	lvl, _ := parseLevel(c.Log.Level)
	opt := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opt))
	}
	return slog.New(slog.NewTextHandler(w, opt))
}

// Path resolves a path from the config against the config file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.file == "" || strings.Contains(p, "://") {
		return p
	}
	return filepath.Join(filepath.Dir(c.file), p)
}

// HWHPath is the .hwh: explicit, or beside the .bit.
func (c *Config) HWHPath() string {
	if c.Bitstream.HWH != "" {
		return c.Path(c.Bitstream.HWH)
	}
	b := c.Path(c.Bitstream.Path)
	return strings.TrimSuffix(b, filepath.Ext(b)) + ".hwh"
}

// SourceInput resolves the source against the config's directory unless it is a URL or
// a device.
func (c *Config) SourceInput() string {
	in := c.Source.Input
	if strings.HasPrefix(in, "/dev/") || isSynthInput(in) {
		return in
	}
	return c.Path(in)
}

// Token returns the control token: inline or read from token_file (trimmed).
func (c *Config) Token() (string, error) {
	if c.Server.TokenFile == "" {
		return c.Server.Token, nil
	}
	b, err := os.ReadFile(c.Path(c.Server.TokenFile))
	if err != nil {
		return "", fmt.Errorf("server.token_file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("server.token_file %s is empty", c.Server.TokenFile)
	}
	if len(t) < MinTokenLen {
		return "", fmt.Errorf("server.token_file %s: the token has %d characters: %s", c.Server.TokenFile, len(t), tokenHint)
	}
	return t, nil
}

// MinTokenLen is the shortest control token accepted: the token guards pausing the
// detector and the board's verification endpoint, so it must not be guessable.
const MinTokenLen = 16

const tokenHint = "use at least 16 random characters (e.g. the output of `openssl rand -hex 16`)"

// OpenOrigins says whether allowed_origins lets any web page open the feed.
func (c *Config) OpenOrigins() bool { return slices.Contains(c.Server.AllowedOrigins, "*") }

// Looping says whether file sources start over.
func (s SourceConfig) Looping() bool { return s.Loop == nil || *s.Loop }
