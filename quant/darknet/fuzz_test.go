package darknet_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

// seedFiles returns the contents of the real cfgs that exist here (fixtures, testdata,
// Debian's darknet); fuzzing must not skip when the fixtures are absent.
func seedFiles(f *testing.F) [][]byte {
	f.Helper()
	root := testutil.RepoRoot(f)
	fixtures := os.Getenv("PYNQ_FIXTURES")
	if fixtures == "" {
		fixtures = filepath.Join(root, "..", "shared", "fixtures")
	}
	paths := []string{
		filepath.Join(root, "testdata", "tinier-yolo-voc.cfg"),
		filepath.Join(fixtures, "yolo-fastest", "yolo-fastest-1.1.cfg"),
		filepath.Join(fixtures, "qnn-mo-pynq", "params", "tinier-yolo-bwn-3bit-relu-nomaxpool.cfg"),
		"/usr/share/darknet/cfg/yolov3-tiny.cfg",
		"/usr/share/darknet/cfg/yolov2-tiny-voc.cfg",
	}
	var out [][]byte
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, b)
		}
	}
	return out
}

func FuzzParseCfg(f *testing.F) {
	seeds := append(seedFiles(f), []byte(smallCfg), []byte(poolsCfg))
	for _, s := range seeds {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(bytes.Replace(s, []byte("[convolutional]"), []byte("[convolution]"), 1))
		f.Add(bytes.Replace(s, []byte("filters="), []byte("filters=-"), 1))
		f.Add(bytes.Replace(s, []byte("size="), []byte("size=x"), 1))
		f.Add(bytes.Replace(s, []byte("layers="), []byte("layers=99,"), 1))
	}
	f.Add([]byte{})
	f.Add([]byte("\x00\xff[net]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := darknet.ParseCfg(bytes.NewReader(data), "fuzz.cfg", darknet.Options{Warn: func(string) {}})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Whatever parses must write back to a cfg that parses to the same model.
		var cfg bytes.Buffer
		if err := darknet.WriteCfg(&cfg, m); err != nil {
			t.Fatalf("WriteCfg of a parsed model: %v", err)
		}
		back, err := darknet.ParseCfg(bytes.NewReader(cfg.Bytes()), "fuzz.cfg", darknet.Options{})
		if err != nil {
			t.Fatalf("reparse: %v\n%s", err, cfg.Bytes())
		}
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("reparsed model differs\n%s", cfg.Bytes())
		}
	})
}

func FuzzReadWeights(f *testing.F) {
	for _, v := range [][2]int32{{0, 2}, {0, 1}, {1000, 2}} {
		good := smallWeights(f, v[0], v[1])
		f.Add(good, true)
		f.Add(good, false)
		f.Add(good[:len(good)-4], true)
		f.Add(good[:len(good)/2], false)
		f.Add(append(append([]byte{}, good...), 0, 0, 0, 0), true)
		f.Add(good[:14], false)
	}
	f.Add([]byte{}, true)
	f.Add([]byte("garbage garbage garbage"), false)
	f.Fuzz(func(t *testing.T, data []byte, knownSize bool) {
		m, err := darknet.ParseCfg(strings.NewReader(smallCfg), "small.cfg", darknet.Options{})
		if err != nil {
			t.Fatal(err)
		}
		size := int64(-1)
		if knownSize {
			size = int64(len(data))
		}
		h, err := darknet.ReadWeights(bytes.NewReader(data), "fuzz.weights", size, m)
		want := -1 // the exact size this cfg needs with data's header
		if len(data) >= 8 {
			major := int32(binary.LittleEndian.Uint32(data))
			minor := int32(binary.LittleEndian.Uint32(data[4:]))
			want = 16 + 266*4
			if int64(major)*10+int64(minor) >= 2 && major < 1000 && minor < 1000 {
				want += 4
			}
		}
		if (err == nil) != (len(data) == want) {
			t.Fatalf("%d bytes (need %d): error %v", len(data), want, err)
		}
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := darknet.WriteWeights(&b, m, h); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), data) {
			t.Fatal("rewritten weights differ")
		}
	})
}
