package darknet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Size limits. They are far above any real detector (YOLOv4 has 64 M parameters) and keep a
// hostile or corrupted cfg from making the importer allocate gigabytes.
const (
	maxCfgBytes     = 4 << 20
	maxLineBytes    = 64 << 10
	maxLayers       = 4096
	maxInputDim     = 1 << 14 // [net] width, height, channels
	maxFilters      = 1 << 16 // yolo9000 has 28269
	maxKernel       = 255
	maxStride       = 64
	maxPadding      = 255
	maxRouteInputs  = 256
	maxClasses      = 1 << 16
	maxAnchors      = 1 << 10
	maxGrowth       = 1 << 10 // product of all upsample strides
	maxChannels     = 1 << 20 // any activation
	maxSpatial      = 1 << 16 // any activation height or width
	maxActivation   = 1 << 28 // elements of any activation
	maxParams       = 1 << 27 // float32 parameters of the whole model (512 MiB)
	maxTotalFilters = 1 << 20 // filters of all convolutions
)

// CfgError is a cfg parse error at a place in the file. Err, when set, is the underlying
// cause (e.g. a wrapped quant.ErrShape).
type CfgError struct {
	File    string
	Line    int    // 0 when the error concerns the whole file
	Section string // e.g. "[convolutional]"; "" for file-level errors
	Key     string // the offending key, if any
	Msg     string
	Err     error
}

func (e *CfgError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Section != "" {
		b.WriteString(e.Section)
		b.WriteString(" ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *CfgError) Unwrap() error { return e.Err }

// option is one key=value line of a section.
type option struct {
	key, val string
	line     int
	used     bool
}

// section is one [type] block of a cfg.
type section struct {
	name string // as written, e.g. "[conv]"
	kind string // canonical kind, e.g. "convolutional"
	line int
	opts []*option
}

// sectionKinds maps the section headers this importer understands (with darknet's
// aliases) to a canonical kind.
var sectionKinds = map[string]string{
	"[net]": "net", "[network]": "net",
	"[convolutional]": "convolutional", "[conv]": "convolutional",
	"[maxpool]": "maxpool", "[max]": "maxpool",
	"[route]":    "route",
	"[shortcut]": "shortcut",
	"[upsample]": "upsample",
	"[dropout]":  "dropout",
	"[region]":   "region",
	"[yolo]":     "yolo",
}

// darknetOnlySections are sections some darknet knows but the quant IR does not model.
var darknetOnlySections = map[string]bool{
	"[local]": true, "[deconv]": true, "[deconvolutional]": true, "[activation]": true,
	"[logistic]": true, "[l2norm]": true, "[crnn]": true, "[gru]": true, "[lstm]": true,
	"[rnn]": true, "[conn]": true, "[connected]": true, "[reorg]": true, "[reorg3d]": true,
	"[avg]": true, "[avgpool]": true, "[lrn]": true, "[normalization]": true,
	"[batchnorm]": true, "[soft]": true, "[softmax]": true, "[crop]": true, "[cost]": true,
	"[detection]": true, "[iseg]": true, "[scale_channels]": true, "[sam]": true,
	"[Gaussian_yolo]": true, "[local_avg]": true, "[local_avgpool]": true,
	"[conv_lstm]": true, "[history]": true, "[contrastive]": true, "[empty]": true,
	"[silence]": true, "[implicit]": true,
}

const supportedSections = "[net], [convolutional], [maxpool], [route], [shortcut], [upsample], [dropout], [region], [yolo]"

// readSections splits a cfg into sections the way darknet's read_cfg does: every line is
// stripped of all whitespace, empty lines and lines starting with # or ; are comments, a
// line starting with [ opens a section, any other line is key=value.
func readSections(r io.Reader, file string, warn func(string)) ([]*section, error) {
	cr := &countingReader{r: io.LimitReader(r, maxCfgBytes+1)}
	sc := bufio.NewScanner(cr)
	sc.Buffer(make([]byte, 0, 4096), maxLineBytes)
	var secs []*section
	lineNo := 0
	for sc.Scan() {
		lineNo++
		raw := sc.Text()
		if lineNo == 1 {
			raw = strings.TrimPrefix(raw, "\ufeff") // a byte-order mark some editors add
		}
		if !utf8.ValidString(raw) || strings.ContainsFunc(raw, isBinary) {
			return nil, &CfgError{File: file, Line: lineNo, Msg: "binary data: this is not a darknet cfg text file"}
		}
		line := stripSpace(raw)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '[':
			s, err := newSection(file, lineNo, line)
			if err != nil {
				return nil, err
			}
			if len(secs) >= maxLayers+1 {
				return nil, &CfgError{File: file, Line: lineNo, Msg: fmt.Sprintf("more than %d layers", maxLayers)}
			}
			secs = append(secs, s)
		default:
			if len(secs) == 0 {
				return nil, &CfgError{File: file, Line: lineNo, Msg: fmt.Sprintf("%q before the first section (a cfg starts with [net])", clip(line))}
			}
			key, val, ok := strings.Cut(line, "=")
			if !ok || key == "" {
				return nil, &CfgError{File: file, Line: lineNo, Section: secs[len(secs)-1].name, Msg: fmt.Sprintf("%q is not key=value", clip(line))}
			}
			s := secs[len(secs)-1]
			if val == "" {
				// darknet's read_option rejects "key=" lines and goes on without them.
				if warn != nil {
					warn(fmt.Sprintf("%s:%d: %s %s has no value: darknet skips the line", file, lineNo, s.name, clip(key)))
				}
				continue
			}
			s.opts = append(s.opts, &option{key: key, val: val, line: lineNo})
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &CfgError{File: file, Line: lineNo + 1, Msg: fmt.Sprintf("line longer than %d bytes: this is not a darknet cfg", maxLineBytes)}
		}
		return nil, &CfgError{File: file, Msg: "read", Err: err}
	}
	if cr.n > maxCfgBytes {
		return nil, &CfgError{File: file, Msg: fmt.Sprintf("larger than %d bytes: this is not a darknet cfg", maxCfgBytes)}
	}
	if len(secs) == 0 {
		return nil, &CfgError{File: file, Msg: "no sections: an empty file or not a darknet cfg (it starts with [net])"}
	}
	return secs, nil
}

func newSection(file string, lineNo int, line string) (*section, error) {
	if kind, ok := sectionKinds[line]; ok {
		return &section{name: line, kind: kind, line: lineNo}, nil
	}
	if darknetOnlySections[line] {
		return nil, &CfgError{File: file, Line: lineNo, Msg: fmt.Sprintf("section %s is not supported by this importer (supported: %s)", line, supportedSections)}
	}
	return nil, &CfgError{File: file, Line: lineNo, Msg: fmt.Sprintf("unknown section %s (darknet knows %s and more)", clip(line), supportedSections)}
}

// stripSpace removes every whitespace character, as darknet's strip() does (it also
// removes the \r of files with Windows line ends).
func stripSpace(s string) string {
	if !strings.ContainsFunc(s, unicode.IsSpace) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

func isBinary(r rune) bool {
	return r == 0 || (r < 0x20 && r != '\t' && r != '\r' && r != '\f' && r != '\v')
}

// clip shortens text quoted in an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
