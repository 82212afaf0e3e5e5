package synth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// DatasetOptions describe a synthetic darknet dataset.
type DatasetOptions struct {
	Out         string  // output directory
	Count       int     // number of images
	Seed        int64   // names the whole dataset
	Width       int     // image size (default 416 x 416)
	Height      int     //
	ValFraction float64 // share of images in val.txt (default 0.1; negative: none)
	Workers     int     // parallel renderers (default 1)
	AllClasses  bool    // label the distractors too (classes.names lists ClassNames)
	AbsPaths    bool    // list files hold absolute paths (darknet resolves relative ones from its working directory)
	Force       bool    // replace an existing dataset in Out
	MinVisible  float64 // see Options (default 0.25)
	MinSide     int     // see Options (default 4 pixels)
	// Progress is called after each image is written (from worker goroutines,
	// serialized), with the number done so far.
	Progress func(done int)
}

// DatasetResult summarizes a written dataset.
type DatasetResult struct {
	Train, Val   int
	Boxes        int   // labelled objects in all images
	Empty        int   // images without a labelled object
	PerClass     []int // boxes per class id
	Names        []string
	ListTrain    string
	ListVal      string
	NamesFile    string
	DataFile     string
	BytesWritten int64
}

// Layout of a dataset directory.
const (
	namesFile = "classes.names"
	dataFile  = "synth.data"
	trainDir  = "train"
	valDir    = "val"
)

// ImageSeed is the scene seed of image i of a dataset with the given seed.
func ImageSeed(seed int64, i int) int64 {
	r := newRNG(seed, uint64(i)+0x5EED)
	return int64(r.next() >> 1)
}

// ImageName is the file name (without extension) of image i.
func ImageName(i int) string { return fmt.Sprintf("synth_%06d", i) }

// WriteDataset renders opt.Count scenes and writes them as a darknet dataset:
// train/ and val/ directories of JPEG images with same-name label files, the list
// files train.txt and val.txt, classes.names and a darknet .data file. The files
// depend only on the options (not on the number of workers).
func WriteDataset(ctx context.Context, opt DatasetOptions) (*DatasetResult, error) {
	opt, err := opt.check()
	if err != nil {
		return nil, err
	}
	if err := prepareOut(opt.Out, opt.Force); err != nil {
		return nil, err
	}
	names := []string{ClassNames[Chair]}
	if opt.AllClasses {
		names = ClassNames[:]
	}
	val := valSet(opt.Seed, opt.Count, opt.ValFraction)
	res := &DatasetResult{Names: names, PerClass: make([]int, len(names))}
	for _, d := range []string{trainDir, valDir} {
		if err := os.MkdirAll(filepath.Join(opt.Out, d), 0o755); err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	var (
		mu       sync.Mutex
		firstErr error
		done     int
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	for range opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rd := newRenderer(opt.Width, opt.Height)
			for i := range jobs {
				boxes, n, err := writeImage(rd, opt, i, val[i])
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				res.Boxes += len(boxes)
				if len(boxes) == 0 {
					res.Empty++
				}
				for _, b := range boxes {
					res.PerClass[b.Class]++
				}
				res.BytesWritten += n
				done++
				if opt.Progress != nil {
					opt.Progress(done)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range opt.Count {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	if err := writeLists(opt, names, val, res); err != nil {
		return nil, err
	}
	return res, nil
}

func (opt DatasetOptions) check() (DatasetOptions, error) {
	if opt.Out == "" {
		return opt, errors.New("synth: no output directory (--output DIR)")
	}
	if opt.Count <= 0 {
		return opt, fmt.Errorf("synth: count %d: want at least one image (--count N)", opt.Count)
	}
	if opt.Width == 0 && opt.Height == 0 {
		opt.Width, opt.Height = 416, 416
	}
	if opt.Width < 32 || opt.Height < 32 || opt.Width > 8192 || opt.Height > 8192 {
		return opt, fmt.Errorf("synth: size %dx%d: want 32..8192 pixels a side", opt.Width, opt.Height)
	}
	if opt.ValFraction == 0 {
		opt.ValFraction = 0.1
	}
	if opt.ValFraction >= 1 {
		return opt, fmt.Errorf("synth: val fraction %g: want less than 1 (0 < f < 1, or negative for no val set)", opt.ValFraction)
	}
	opt.ValFraction = math.Max(opt.ValFraction, 0)
	opt.Workers = max(opt.Workers, 1)
	return opt, nil
}

// prepareOut refuses to mix a new dataset into an old one unless forced, since
// stale images would silently stay in the directories.
func prepareOut(out string, force bool) error {
	ents, err := os.ReadDir(out)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(out, 0o755)
	}
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if len(ents) == 0 {
		return nil
	}
	if !force {
		return fmt.Errorf("synth: %s is not empty; give an empty or new directory, or --force to replace the dataset there", out)
	}
	for _, name := range []string{trainDir, valDir, "train.txt", "val.txt", namesFile, dataFile} {
		if err := os.RemoveAll(filepath.Join(out, name)); err != nil {
			return fmt.Errorf("synth: replacing %s: %w", out, err)
		}
	}
	return nil
}

// valSet picks round(count*frac) images for validation by a seeded shuffle.
func valSet(seed int64, count int, frac float64) []bool {
	nVal := int(math.Round(float64(count) * frac))
	if frac > 0 && nVal == 0 && count > 1 {
		nVal = 1
	}
	val := make([]bool, count)
	for _, i := range perm(newRNG(seed, 2), count)[:nVal] {
		val[i] = true
	}
	return val
}

// writeImage renders image i and writes its JPEG and label file.
func writeImage(rd *renderer, opt DatasetOptions, i int, isVal bool) ([]Box, int64, error) {
	seed := ImageSeed(opt.Seed, i)
	sc := newSceneDesc(seed, opt.Width, opt.Height)
	cam := sc.camera()
	img, boxes := rd.render(sc, cam, Options{AllClasses: opt.AllClasses, MinVisible: opt.MinVisible, MinSide: opt.MinSide}.withDefaults())
	quality := 72 + int(hash2(seed, 3, 0)*24)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, 0, fmt.Errorf("synth: image %d: %w", i, err)
	}
	base := filepath.Join(opt.Out, splitDir(isVal), ImageName(i))
	if err := os.WriteFile(base+".jpg", buf.Bytes(), 0o644); err != nil {
		return nil, 0, fmt.Errorf("synth: %w", err)
	}
	labels := Labels(boxes, opt.Width, opt.Height)
	if err := os.WriteFile(base+".txt", labels, 0o644); err != nil {
		return nil, 0, fmt.Errorf("synth: %w", err)
	}
	return boxes, int64(buf.Len() + len(labels)), nil
}

func splitDir(isVal bool) string {
	if isVal {
		return valDir
	}
	return trainDir
}

// Labels formats boxes as a darknet label file: `class cx cy w h` per line.
func Labels(boxes []Box, w, h int) []byte {
	var b strings.Builder
	for _, bx := range boxes {
		cx, cy, bw, bh := bx.Darknet(w, h)
		fmt.Fprintf(&b, "%d %.6f %.6f %.6f %.6f\n", bx.Class, cx, cy, bw, bh)
	}
	return []byte(b.String())
}

func writeLists(opt DatasetOptions, names []string, val []bool, res *DatasetResult) error {
	var train, valList []string
	for i, v := range val {
		p := filepath.Join(splitDir(v), ImageName(i)+".jpg")
		if opt.AbsPaths {
			abs, err := filepath.Abs(filepath.Join(opt.Out, p))
			if err != nil {
				return fmt.Errorf("synth: %w", err)
			}
			p = abs
		}
		if v {
			valList = append(valList, p)
		} else {
			train = append(train, p)
		}
	}
	sort.Strings(train)
	sort.Strings(valList)
	res.Train, res.Val = len(train), len(valList)
	res.ListTrain = filepath.Join(opt.Out, "train.txt")
	res.ListVal = filepath.Join(opt.Out, "val.txt")
	res.NamesFile = filepath.Join(opt.Out, namesFile)
	res.DataFile = filepath.Join(opt.Out, dataFile)
	ref := func(name string) string {
		if opt.AbsPaths {
			abs, _ := filepath.Abs(filepath.Join(opt.Out, name))
			return abs
		}
		return filepath.Join(opt.Out, name)
	}
	data := fmt.Sprintf("classes = %d\ntrain = %s\nvalid = %s\nnames = %s\nbackup = %s\n",
		len(names), ref("train.txt"), ref("val.txt"), ref(namesFile), ref("backup"))
	files := []struct {
		path string
		body string
	}{
		{res.ListTrain, lines(train)},
		{res.ListVal, lines(valList)},
		{res.NamesFile, lines(names)},
		{res.DataFile, data},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, []byte(f.body), 0o644); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
	}
	return nil
}

func lines(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return strings.Join(s, "\n") + "\n"
}
