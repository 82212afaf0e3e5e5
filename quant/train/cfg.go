package train

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Config holds the training options of a darknet cfg that the model IR does not keep:
// the [net] section's solver and augmentation keys and the [region] section's loss
// weights. Defaults are pjreddie darknet's (parse_net_options, parse_region).
type Config struct {
	LearningRate float64 // learning_rate (.001)
	Momentum     float64 // momentum (.9)
	Decay        float64 // decay (.0001)
	Batch        int     // batch (1): images per weight update
	Subdivisions int     // subdivisions (1): batch/subdivisions images per forward pass
	MaxBatches   int     // max_batches (0)
	Policy       string  // policy: constant, steps, step, poly, exp (constant)
	Steps        []int   // steps (policy steps)
	Scales       []float64
	Step         int     // step (policy step; 1)
	Scale        float64 // scale (policy step; 1)
	Gamma        float64 // gamma (policy exp; 1)
	Power        float64 // power (poly and burn_in; 4)
	BurnIn       int     // burn_in (0)

	Hue, Saturation, Exposure float64 // hue (0), saturation (1), exposure (1)
	Flip                      bool    // flip (1): random horizontal flips (pjreddie always flips)
	Jitter                    float64 // [region] jitter (.2)

	Region RegionParams
}

// RegionParams are the [region] loss keys (parse_region defaults).
type RegionParams struct {
	CoordScale, ObjectScale, NoObjectScale, ClassScale float64 // 1, 1, 1, 1
	Thresh                                             float64 // .5
	Rescore, BiasMatch                                 bool
	MaxBoxes                                           int // truths per image (30)
	// PriorImages is how many images the prior-matching term (every anchor's box
	// pulled towards its prior, scale .01) trains for: 0 means darknet's 12800, a
	// negative number never. Fine-tuning a trained detector (seen starts at 0, as with
	// darknet's -clear) wants it off: over a short run it pulls every box regression
	// of the head towards the priors.
	PriorImages int
}

// DefaultConfig returns darknet's defaults.
func DefaultConfig() Config {
	return Config{
		LearningRate: .001, Momentum: .9, Decay: .0001, Batch: 1, Subdivisions: 1,
		Policy: "constant", Step: 1, Scale: 1, Gamma: 1, Power: 4,
		Saturation: 1, Exposure: 1, Flip: true, Jitter: .2,
		Region: RegionParams{CoordScale: 1, ObjectScale: 1, NoObjectScale: 1, ClassScale: 1, Thresh: .5, MaxBoxes: 30},
	}
}

// MiniBatch is the number of images of one forward/backward pass (batch/subdivisions).
func (c *Config) MiniBatch() int { return max(1, c.Batch/max(1, c.Subdivisions)) }

// LoadConfig reads the training options of the cfg at path.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("training options: %w", err)
	}
	defer f.Close()
	return ParseConfig(f, path)
}

// ParseConfig reads the [net] and [region] training keys of a darknet cfg; other
// sections and unknown keys are ignored (the model parser checks them). Errors name
// file:line.
func ParseConfig(r io.Reader, name string) (Config, error) {
	c := DefaultConfig()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	section := ""
	for line := 1; sc.Scan(); line++ {
		s := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, sc.Text())
		if s == "" || s[0] == '#' || s[0] == ';' {
			continue
		}
		if s[0] == '[' {
			section = strings.Trim(s, "[]")
			continue
		}
		key, val, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		var err error
		switch section {
		case "net", "network":
			err = c.setNet(key, val)
		case "region":
			err = c.setRegion(key, val)
		}
		if err != nil {
			return c, fmt.Errorf("%s:%d: [%s] %s=%s: %w", name, line, section, key, val, err)
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("%s: %w", name, err)
	}
	if c.Batch < 1 || c.Subdivisions < 1 {
		return c, fmt.Errorf("%s: batch %d and subdivisions %d must be positive", name, c.Batch, c.Subdivisions)
	}
	if c.Policy == "steps" && len(c.Steps) != len(c.Scales) {
		return c, fmt.Errorf("%s: %d steps but %d scales (give one scale per step)", name, len(c.Steps), len(c.Scales))
	}
	return c, nil
}

func (c *Config) setNet(key, val string) error {
	var err error
	switch key {
	case "learning_rate":
		c.LearningRate, err = pfloat(val)
	case "momentum":
		c.Momentum, err = pfloat(val)
	case "decay":
		c.Decay, err = pfloat(val)
	case "batch":
		c.Batch, err = pint(val)
	case "subdivisions":
		c.Subdivisions, err = pint(val)
	case "max_batches":
		c.MaxBatches, err = pint(val)
	case "policy":
		switch val {
		case "constant", "steps", "step", "poly", "exp":
			c.Policy = val
		default:
			err = fmt.Errorf("unsupported policy (constant, steps, step, poly, exp)")
		}
	case "steps":
		c.Steps, err = pints(val)
	case "scales":
		c.Scales, err = pfloats(val)
	case "step":
		c.Step, err = pint(val)
	case "scale":
		c.Scale, err = pfloat(val)
	case "gamma":
		c.Gamma, err = pfloat(val)
	case "power":
		c.Power, err = pfloat(val)
	case "burn_in":
		c.BurnIn, err = pint(val)
	case "hue":
		c.Hue, err = pfloat(val)
	case "saturation":
		c.Saturation, err = pfloat(val)
	case "exposure":
		c.Exposure, err = pfloat(val)
	case "flip":
		var v int
		v, err = pint(val)
		c.Flip = v != 0
	}
	return err
}

func (c *Config) setRegion(key, val string) error {
	var err error
	var v int
	p := &c.Region
	switch key {
	case "coord_scale":
		p.CoordScale, err = pfloat(val)
	case "object_scale":
		p.ObjectScale, err = pfloat(val)
	case "noobject_scale":
		p.NoObjectScale, err = pfloat(val)
	case "class_scale":
		p.ClassScale, err = pfloat(val)
	case "thresh":
		p.Thresh, err = pfloat(val)
	case "rescore":
		v, err = pint(val)
		p.Rescore = v != 0
	case "bias_match":
		v, err = pint(val)
		p.BiasMatch = v != 0
	case "max":
		p.MaxBoxes, err = pint(val)
	case "jitter":
		c.Jitter, err = pfloat(val)
	}
	return err
}

func pfloat(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("not a number")
	}
	return v, nil
}

func pint(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("not a non-negative integer")
	}
	return v, nil
}

func pints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("not a list of integers")
		}
		out = append(out, v)
	}
	return out, nil
}

func pfloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := pfloat(f)
		if err != nil {
			return nil, fmt.Errorf("not a list of numbers")
		}
		out = append(out, v)
	}
	return out, nil
}

// Rate is darknet's get_current_rate at update number batchNum (seen / batch):
// burn_in ramps the rate as lr*(batchNum/burn_in)^power, then the policy applies.
func (c *Config) Rate(batchNum int) float64 {
	lr := c.LearningRate
	if batchNum < c.BurnIn {
		return lr * math.Pow(float64(batchNum)/float64(c.BurnIn), c.Power)
	}
	switch c.Policy {
	case "steps":
		for i, s := range c.Steps {
			if s > batchNum {
				return lr
			}
			lr *= c.Scales[i]
		}
		return lr
	case "step":
		return lr * math.Pow(c.Scale, float64(batchNum/max(1, c.Step)))
	case "exp":
		return lr * math.Pow(c.Gamma, float64(batchNum))
	case "poly":
		if c.MaxBatches <= 0 {
			return lr
		}
		return lr * math.Pow(1-float64(batchNum)/float64(c.MaxBatches), c.Power)
	}
	return lr
}
