package main

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

func init() { rootCommands = append(rootCommands, newDetectCmd) }

type detectFlags struct {
	cfg, weights, model, names, annotate, dialect string
	decoder                                       string
	thresh, nms                                   float32
	json                                          bool
	threads                                       int
}

func newDetectCmd(log *slog.Logger) *cobra.Command {
	var f detectFlags
	cmd := &cobra.Command{
		Use:   "detect (--cfg F --weights F | --model DIR) [--names F] IMAGE...",
		Short: "Detect objects in images with a darknet model or a QNN-MO W1A3 parameter directory",
		Long: `Runs the model on each image as darknet's detector does (letterbox, network,
region/yolo decoding, do_nms_sort) and prints darknet-style lines ("chair: 77%"), or with
--json one JSON object per image with boxes in pixels of the original image.

A darknet model is --cfg + --weights; --model DIR takes a QNN-MO-PYNQ parameter directory
(the W1A3 Tinier-YOLO: float first layer, engine layers on the host reference engine,
float last layer).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDetect(cmd, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cfg, "cfg", "", "darknet cfg file")
	fl.StringVar(&f.weights, "weights", "", "darknet .weights file")
	fl.StringVar(&f.model, "model", "", "QNN-MO parameter directory (instead of --cfg/--weights)")
	fl.StringVar(&f.names, "names", "", "class names file, one per line (default: class numbers)")
	fl.Float32Var(&f.thresh, "thresh", 0.25, "detection threshold")
	fl.Float32Var(&f.nms, "nms", boxes.DarknetNMS, "NMS overlap threshold")
	fl.BoolVar(&f.json, "json", false, "one JSON object per image instead of darknet-style lines")
	fl.StringVar(&f.annotate, "annotate", "", "write images with boxes and labels into this directory")
	fl.StringVar(&f.dialect, "dialect", "", "darknet dialect: pjreddie or alexeyab (default: from the cfg)")
	fl.IntVar(&f.threads, "threads", 0, "worker goroutines (default: all cores)")
	fl.StringVar(&f.decoder, "decoder", "", decoderHelp)
	return cmd
}

// decoderHelp documents --decoder for detect and qnn input.
const decoderHelp = `JPEG decoding to reproduce: stb (stb_image: darknet built without OpenCV, ` +
	`upstream's default, and QNN-MO-PYNQ's published results) or libjpeg (libjpeg-turbo: ` +
	`darknet built with OpenCV, e.g. Debian's package, the toolchain's reference). ` +
	`Default: stb for --model DIR, libjpeg for --cfg/--weights`

// imageDecoder returns the decoder --decoder names, else def.
func imageDecoder(flag string, def imageio.Decoder) (imageio.Decoder, error) {
	if flag == "" {
		return def, nil
	}
	return imageio.ParseDecoder(flag)
}

// loadDetector builds the detector the flags describe.
func loadDetector(f detectFlags) (*detector.Loaded, error) {
	switch {
	case f.model != "" && (f.cfg != "" || f.weights != ""):
		return nil, errors.New("give either --model or --cfg/--weights, not both")
	case f.model == "" && (f.cfg == "" || f.weights == ""):
		return nil, errors.New("need --cfg and --weights (a darknet model) or --model DIR (a QNN-MO parameter directory)")
	}
	return detector.Load(detector.Spec{Dir: f.model, Cfg: f.cfg, Weights: f.weights, Dialect: quant.Dialect(f.dialect), Threads: f.threads, NMS: f.nms})
}

func runDetect(cmd *cobra.Command, f detectFlags, images []string) error {
	dec, err := imageDecoder(f.decoder, imageio.LibJPEG) // refused before the model loads
	if err != nil {
		return err
	}
	l, err := loadDetector(f)
	if err != nil {
		return err
	}
	if f.decoder == "" {
		dec = l.Decoder
	}
	var names []string
	if f.names != "" {
		if names, err = boxes.LoadNames(f.names); err != nil {
			return err
		}
		if err := l.CheckNames(f.names, len(names)); err != nil {
			return err
		}
	}
	d, classes := l.Detector, l.Model.Classes()
	if f.annotate != "" {
		if err := os.MkdirAll(f.annotate, 0o755); err != nil {
			return fmt.Errorf("annotate: %w", err)
		}
	}
	out := bufio.NewWriter(cmd.OutOrStdout())
	defer out.Flush()
	for _, path := range images {
		if err := cmd.Context().Err(); err != nil {
			return err
		}
		img, err := imageio.LoadWith(path, dec)
		if err != nil {
			return err // names the file
		}
		start := time.Now()
		objs, err := detector.Objects(d, img, f.thresh, names)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if f.json {
			err = boxes.WriteJSON(out, boxes.NewJSONImage(path, img.W, img.H, objs))
		} else {
			fmt.Fprintf(out, "%s: Predicted in %d ms.\n", path, time.Since(start).Milliseconds())
			err = boxes.WriteDarknet(out, objs)
		}
		if err != nil {
			return err
		}
		if f.annotate != "" {
			if err := annotate(f.annotate, path, img, objs, classes); err != nil {
				return err
			}
		}
	}
	return out.Flush()
}

// annotate writes img with boxes and labels drawn into dir, as JPEG, named after path.
func annotate(dir, path string, img *imageio.Image, objs []boxes.Detection, classes int) error {
	rgba := img.ToRGBA()
	imageio.Draw(rgba, boxes.Labels(objs, classes))
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return imageio.Save(filepath.Join(dir, base+".jpg"), rgba)
}
