package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

func TestExampleConfigLoads(t *testing.T) {
	path := filepath.Join(testutil.RepoRoot(t), "configs", "pynq-agent.toml")
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend != BackendBoard || c.Model.Kind != ModelQNN || c.Source.Input != "/dev/video0" ||
		c.Server.Listen != "127.0.0.1:8080" || c.Source.Retry.Duration != 500*time.Millisecond || c.Queues.Frames != 2 {
		t.Errorf("example config decoded as %+v", c)
	}
	// Every key of the example is documented by a comment line right above it (or above
	// its group), and every key the decoder knows appears in the example.
	data, _ := os.ReadFile(path)
	for _, key := range []string{"backend", "path", "hwh", "engine", "kind", "dir", "cfg", "weights", "names", "thresh", "nms",
		"classes", "threads", "input", "fps", "loop", "width", "height", "format", "retry", "retry_max", "stall_timeout", "listen", "token",
		"token_file", "allowed_origins", "jpeg_quality", "shutdown_timeout", "instance", "channel", "pin", "level", "frames", "output"} {
		if !strings.Contains(string(data), "\n"+key+" =") {
			t.Errorf("example config lacks key %s", key)
		}
	}
}

func TestConfigDefaultsAndPaths(t *testing.T) {
	c, err := ParseConfig([]byte("backend = \"sim\"\n[bitstream]\npath = \"ov/x.bit\"\n[model]\ndir = \"params\"\n"), "/etc/pynq/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.Thresh != 0.3 || c.Server.Listen != "127.0.0.1:8080" || !c.Source.Looping() {
		t.Errorf("defaults not applied: %+v", c)
	}
	if got := c.HWHPath(); got != "/etc/pynq/ov/x.hwh" {
		t.Errorf("hwh %s", got)
	}
	if got := c.Path(c.Model.Dir); got != "/etc/pynq/params" {
		t.Errorf("model dir %s", got)
	}
	c.Source.Input = "/dev/video1"
	if c.SourceInput() != "/dev/video1" {
		t.Error(c.SourceInput())
	}
}

// TestConfigErrorsNameKeyAndLine: every kind of mistake names the key and its line.
func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct {
		name, toml, key string
		line            int
	}{
		{"unknown top key", "backend = \"sim\"\nbakend = \"board\"\n", "bakend", 2},
		{"unknown table key", "[model]\nthresh = 0.4\nthreshold = 0.5\n", "model.threshold", 3},
		{"unknown table", "[modle]\ndir = \"x\"\n", "modle", 1},
		{"bad backend", "\n\nbackend = \"fpga\"\n", "backend", 3},
		{"thresh range", "[model]\n# c\nthresh = 1.5\n", "model.thresh", 3},
		{"bad listen", "[server]\nlisten = \"8080\"\n", "server.listen", 2},
		{"bad duration", "[source]\nretry = \"soon\"\n", "source.retry", 2},
		{"wrong type", "[source]\n\nfps = \"fast\"\n", "source.fps", 3},
		{"queue size", "[queues]\nframes = 0\n", "queues.frames", 2},
		{"log level", "[log]\nlevel = \"loud\"\n", "log.level", 2},
		{"led pin", "[led]\ninstance = \"leds\"\nchannel = 3\npin = 1\n", "led.pin", 4},
		{"darknet without weights", "[model]\nkind = \"darknet\"\ncfg = \"a.cfg\"\n", "model.weights", 0},
		{"syntax", "[model]\nthresh = = 1\n", "", 2},
		{"dotted key", "model.nms = 2.0\n", "model.nms", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.toml), "agent.toml")
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a ConfigError", err)
			}
			if tc.key != "" && !strings.Contains(err.Error(), tc.key) {
				t.Errorf("%v does not name key %s", err, tc.key)
			}
			if ce.Line != tc.line {
				t.Errorf("%v: line %d, want %d", err, ce.Line, tc.line)
			}
			if tc.line > 0 && !strings.HasPrefix(err.Error(), "agent.toml:"+strconv.Itoa(tc.line)+":") {
				t.Errorf("%q does not start with file:line", err)
			}
			t.Log(err)
		})
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret-s3cret-s3cret\n"), 0o600)
	c, err := ParseConfig([]byte("[server]\ntoken_file = \"token\"\n"), filepath.Join(dir, "a.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := c.Token(); err != nil || tok != "s3cret-s3cret-s3cret" {
		t.Errorf("token %q %v", tok, err)
	}
	if _, err := ParseConfig([]byte("[server]\ntoken = \"a\"\ntoken_file = \"token\"\n"), "a.toml"); err == nil {
		t.Error("token and token_file both accepted")
	}
}

func FuzzParseConfig(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(f), "configs", "pynq-agent.toml")); err == nil {
		f.Add(data)
	}
	f.Add([]byte("backend = \"sim\"\n[model]\nthresh = 0.5\n"))
	f.Add([]byte("[model\nthresh = \n"))
	f.Add([]byte("a.b.c = 1\n[x.y]\nz = [1, \"a\"]\n"))
	f.Add([]byte("[[queues]]\nframes = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, "fuzz.toml")
		if err == nil {
			if c.Validate() != nil {
				t.Fatal("accepted config fails Validate")
			}
			return
		}
		if ce := (*ConfigError)(nil); !errors.As(err, &ce) {
			t.Fatalf("error %v is not a ConfigError", err)
		}
	})
}

// TestSimQNNMOConfigLoads checks the README's config for the published model: it parses,
// and its relative paths reach the shared fixtures beside the checkout.
func TestSimQNNMOConfigLoads(t *testing.T) {
	c, err := LoadConfig(filepath.Join(testutil.RepoRoot(t), "configs", "sim-qnn-mo.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend != BackendSim || c.Model.Kind != ModelQNN {
		t.Errorf("decoded as %+v", c)
	}
	fixtures := testutil.FixturesDir(t)
	for _, p := range []string{c.Path(c.Bitstream.Path), c.Path(c.Model.Dir), c.Path(c.Model.Names), c.Path(c.Source.Input)} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%v (fixtures at %s)", err, fixtures)
		}
	}
}

// TestTokenLength: short tokens are refused, inline and from token_file, naming the key.
func TestTokenLength(t *testing.T) {
	if _, err := ParseConfig([]byte("[server]\ntoken = \"short\"\n"), "a.toml"); err == nil || !strings.Contains(err.Error(), "server.token") || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short inline token: %v", err)
	}
	if _, err := ParseConfig([]byte("[server]\ntoken = \"0123456789abcdef\"\n"), "a.toml"); err != nil {
		t.Errorf("16-character token: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig([]byte("[server]\ntoken_file = \"token\"\n"), filepath.Join(dir, "a.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(); err == nil || !strings.Contains(err.Error(), "3 characters") {
		t.Errorf("short token file: %v", err)
	}
	c, err = ParseConfig([]byte("[server]\nallowed_origins = [\"*\"]\n"), "a.toml")
	if err != nil || !c.OpenOrigins() {
		t.Errorf("allowed_origins *: open %v, err %v", c != nil && c.OpenOrigins(), err)
	}
}

// TestEngineAndHealthKeys: the engine timeout and the stall window are checked.
func TestEngineAndHealthKeys(t *testing.T) {
	for doc, want := range map[string]string{
		"[engine]\ntimeout = \"0s\"\n":                             "engine.timeout",
		"[engine]\ntimeout = \"20s\"\n[health]\nstall = \"15s\"\n": "health.stall",
	} {
		if _, err := ParseConfig([]byte(doc), "a.toml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %s", doc, err, want)
		}
	}
	c, err := ParseConfig([]byte("[engine]\ntimeout = \"2s\"\n[health]\nstall = \"5s\"\n"), "a.toml")
	if err != nil || c.Engine.Timeout.Duration != 2*time.Second || c.Health.Stall.Duration != 5*time.Second {
		t.Errorf("config %+v %+v, err %v", c.Engine, c.Health, err)
	}
}

// TestServerBounds: the viewer and connection caps are checked against each other.
func TestServerBounds(t *testing.T) {
	for doc, want := range map[string]string{
		"[server]\nmax_viewers = 0\n":                         "server.max_viewers",
		"[server]\nmax_viewers = 100\nmax_connections = 50\n": "server.max_connections",
	} {
		if _, err := ParseConfig([]byte(doc), "a.toml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %s", doc, err, want)
		}
	}
}
