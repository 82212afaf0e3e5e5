//go:build cgo

package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"
)

// LibEnv names the environment variable that overrides the library location.
const LibEnv = "ONNXRUNTIME_LIB"

// libGlob is where scripts/install-onnxruntime.sh leaves the library, relative to the
// repository root.
const libGlob = ".cache/onnxruntime/node_modules/onnxruntime-node/bin/napi-v*/linux/x64/libonnxruntime.so*"

// ErrNoLibrary is wrapped when libonnxruntime.so cannot be found.
var ErrNoLibrary = errors.New("libonnxruntime.so not found (run scripts/install-onnxruntime.sh or set " + LibEnv + ")")

// LibraryPath returns $ONNXRUNTIME_LIB, else the library installed under the repository
// (the directory holding go.mod above the working directory).
func LibraryPath() (string, error) {
	if p := os.Getenv(LibEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", LibEnv, p, err)
		}
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoLibrary, err)
	}
	matches, _ := filepath.Glob(filepath.Join(root, libGlob))
	sort.Strings(matches)
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() {
			return m, nil
		}
	}
	return "", fmt.Errorf("%w: nothing matches %s", ErrNoLibrary, filepath.Join(root, libGlob))
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

var (
	initOnce sync.Once
	initErr  error
)

// Init loads the library and creates onnxruntime's process-wide environment; later
// calls return the first call's result.
func Init() error {
	initOnce.Do(func() {
		var lib string
		if lib, initErr = LibraryPath(); initErr != nil {
			return
		}
		ortgo.SetSharedLibraryPath(lib)
		if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("load onnxruntime %s: %w", lib, err)
		}
	})
	return initErr
}

// Options tunes a session.
type Options struct {
	// IntraOpThreads is onnxruntime's intra-op thread count; 0 lets it choose (one per
	// core).
	IntraOpThreads int
}

// Tensor is one float output.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Session runs one model with preallocated input and output tensors (the model's
// shapes must be fixed, as our exports' are).
type Session struct {
	sess        *ortgo.AdvancedSession
	input       *ortgo.Tensor[float32]
	outputs     []*ortgo.Tensor[float32]
	outputNames []string
	InputShape  []int64
}

// Open loads a model file with one float input and float outputs.
func Open(modelPath string, opt Options) (*Session, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	ins, outs, err := ortgo.GetInputOutputInfo(modelPath)
	if err != nil {
		return nil, fmt.Errorf("onnxruntime: read %s: %w", modelPath, err)
	}
	if len(ins) != 1 || ins[0].DataType != ortgo.TensorElementDataTypeFloat {
		return nil, fmt.Errorf("onnxruntime: %s: want one float input, have %d", modelPath, len(ins))
	}
	s := &Session{InputShape: append([]int64(nil), ins[0].Dimensions...)}
	if s.input, err = ortgo.NewEmptyTensor[float32](ins[0].Dimensions); err != nil {
		return nil, fmt.Errorf("onnxruntime: input %s %v: %w", ins[0].Name, ins[0].Dimensions, err)
	}
	outVals := make([]ortgo.Value, len(outs))
	for i, o := range outs {
		t, err := ortgo.NewEmptyTensor[float32](o.Dimensions)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("onnxruntime: output %s %v: %w", o.Name, o.Dimensions, err)
		}
		s.outputs, s.outputNames, outVals[i] = append(s.outputs, t), append(s.outputNames, o.Name), t
	}
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("onnxruntime: session options: %w", err)
	}
	defer so.Destroy()
	if opt.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opt.IntraOpThreads); err != nil {
			s.Close()
			return nil, fmt.Errorf("onnxruntime: intra-op threads: %w", err)
		}
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		s.Close()
		return nil, fmt.Errorf("onnxruntime: inter-op threads: %w", err)
	}
	s.sess, err = ortgo.NewAdvancedSession(modelPath, []string{ins[0].Name}, s.outputNames,
		[]ortgo.Value{s.input}, outVals, so)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("onnxruntime: open %s: %w", modelPath, err)
	}
	return s, nil
}

// Run copies input into the model (its length must match the input shape), runs it and
// returns copies of the outputs by name.
func (s *Session) Run(input []float32) (map[string]Tensor, error) {
	if err := s.RunInPlace(input); err != nil {
		return nil, err
	}
	out := make(map[string]Tensor, len(s.outputs))
	for i, t := range s.outputs {
		out[s.outputNames[i]] = Tensor{
			Shape: append([]int64(nil), t.GetShape()...),
			Data:  append([]float32(nil), t.GetData()...),
		}
	}
	return out, nil
}

// RunInPlace runs the model without copying the outputs out (for benchmarks).
func (s *Session) RunInPlace(input []float32) error {
	dst := s.input.GetData()
	if len(input) != len(dst) {
		return fmt.Errorf("onnxruntime: input has %d values, model wants %d (shape %v)", len(input), len(dst), s.InputShape)
	}
	copy(dst, input)
	if err := s.sess.Run(); err != nil {
		return fmt.Errorf("onnxruntime: run: %w", err)
	}
	return nil
}

// Close frees the session and its tensors.
func (s *Session) Close() {
	if s.sess != nil {
		s.sess.Destroy()
	}
	if s.input != nil {
		s.input.Destroy()
	}
	for _, t := range s.outputs {
		t.Destroy()
	}
}

// RunFile opens modelPath, runs it once on input and closes it.
func RunFile(modelPath string, input []float32, opt Options) (map[string]Tensor, error) {
	s, err := Open(modelPath, opt)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Run(input)
}
