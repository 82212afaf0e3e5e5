package darknet

import (
	"fmt"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant"
)

// Keys each darknet reads per section, from pjreddie's and AlexeyAB's parser.c. Keys that
// only train (learning_rate, jitter, ...) are listed too: darknet reads them, inference
// ignores them. A key in neither list is one darknet would report as an unused field.
var (
	pjreddieKeys = map[string]string{
		"net": "batch learning_rate momentum decay subdivisions time_steps notruth random adam B1 B2 eps " +
			"height width channels inputs max_crop min_crop max_ratio min_ratio center clip angle aspect " +
			"saturation exposure hue policy burn_in power step scale steps scales gamma max_batches",
		"convolutional": "filters size stride pad padding groups activation batch_normalize binary xnor flipped dot",
		"maxpool":       "stride size padding",
		"route":         "layers",
		"shortcut":      "from activation alpha beta",
		"upsample":      "stride scale",
		"dropout":       "probability",
		"region": "coords classes num log sqrt softmax background max jitter rescore thresh classfix absolute " +
			"random coord_scale object_scale noobject_scale mask_scale class_scale bias_match tree map anchors",
		"yolo": "classes num mask max jitter ignore_thresh truth_thresh random map anchors",
	}
	alexeyABOnlyKeys = map[string]string{
		"net": "learning_rate_min sgdr_cycle sgdr_mult track augment_speed sequential_subdivisions try_fix_nan " +
			"weights_reject_freq equidistant_point badlabels_rejection_percentage num_sigmas_reject_badlabels " +
			"ema_alpha use_cuda_graph loss_scale dynamic_minibatch optimized_memory workspace_size_limit_MB " +
			"flip blur gaussian_noise mixup cutmix mosaic letter_box mosaic_bound contrastive " +
			"contrastive_jit_flip contrastive_color unsupervised label_smooth_eps resize_step attention " +
			"adversarial_lr max_chart_loss seq_scales show_receptive_field",
		"convolutional": "stride_x stride_y dilation antialiasing assisted_excitation share_index cbn bin_output " +
			"sway rotate stretch stretch_sway angle grad_centr reverse coordconv stream wait_stream",
		"maxpool":  "stride_x stride_y maxpool_depth out_channels antialiasing maxpool_zero_nonmax",
		"route":    "groups group_id stream wait_stream",
		"shortcut": "weights_type weights_normalization",
		"dropout":  "dropblock dropblock_size_rel dropblock_size_abs",
		"region":   "focal_loss resize",
		"yolo": "show_details max_delta counters_per_class label_smooth_eps scale_x_y objectness_smooth " +
			"new_coords iou_normalizer obj_normalizer cls_normalizer delta_normalizer iou_loss " +
			"iou_thresh_kind beta_nms nms_kind resize focal_loss iou_thresh track_history_size sim_thresh " +
			"dets_for_track dets_for_show track_ciou_norm embedding_layer",
	}
	// Read for every layer section by the network parser.
	pjreddieLayerKeys   = "truth onlyforward stopbackward dontsave dontload numload dontloadscales learning_rate smooth"
	alexeyABLayerKeys   = "clip dont_update burnin_update train_only_bn"
	alexeyABActivations = map[string]bool{"mish": true, "swish": true, "hard_mish": true, "relu6": true,
		"gelu": true, "normalize_channels": true, "normalize_channels_softmax": true,
		"normalize_channels_softmax_maxval": true, "revleaky": true}
)

type keySet map[string]bool

func words(s ...string) keySet {
	ks := keySet{}
	for _, part := range s {
		for _, w := range strings.Fields(part) {
			ks[w] = true
		}
	}
	return ks
}

var (
	knownKeys  = map[string]keySet{}
	abOnlyKeys = map[string]keySet{}
)

func init() {
	for kind, pj := range pjreddieKeys {
		ab := alexeyABOnlyKeys[kind]
		if kind == "net" {
			knownKeys[kind] = words(pj, ab)
			abOnlyKeys[kind] = words(ab)
			continue
		}
		knownKeys[kind] = words(pj, ab, pjreddieLayerKeys, alexeyABLayerKeys)
		abOnlyKeys[kind] = words(ab, alexeyABLayerKeys)
	}
}

// detectDialect says which darknet a cfg was written for: AlexeyAB when it uses a key or
// activation only AlexeyAB's parser reads, else pjreddie. The reason names the first
// such place.
func detectDialect(file string, secs []*section) (quant.Dialect, string) {
	for _, s := range secs {
		for _, o := range s.opts {
			if abOnlyKeys[s.kind][o.key] {
				return quant.DialectAlexeyAB, fmt.Sprintf("%s:%d: %s %s", file, o.line, s.name, o.key)
			}
			if o.key == "activation" && alexeyABActivations[o.val] {
				return quant.DialectAlexeyAB, fmt.Sprintf("%s:%d: activation=%s", file, o.line, o.val)
			}
			if s.kind == "shortcut" && o.key == "from" && strings.Contains(o.val, ",") {
				return quant.DialectAlexeyAB, fmt.Sprintf("%s:%d: shortcut from several layers", file, o.line)
			}
		}
	}
	return quant.DialectPjreddie, ""
}

// warnKeys reports keys no darknet reads in their section, and repeated keys (darknet
// uses the first).
func warnKeys(file string, secs []*section, warn func(string)) {
	if warn == nil {
		return
	}
	for _, s := range secs {
		seen := map[string]bool{}
		for _, o := range s.opts {
			if !knownKeys[s.kind][o.key] {
				warn(fmt.Sprintf("%s:%d: %s unknown key %q: darknet ignores it (typo?)", file, o.line, s.name, clip(o.key)))
			} else if seen[o.key] {
				warn(fmt.Sprintf("%s:%d: %s %s repeated: darknet uses the first value", file, o.line, s.name, o.key))
			}
			seen[o.key] = true
		}
	}
}
