package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/fpgadetector/pynq-agent/agent"
	"github.com/fpgadetector/pynq-agent/agent/boardverify"
	"github.com/spf13/cobra"
)

func init() { rootCommands = append(rootCommands, newBoardVerifyCmd) }

// exitVerifyMismatch is the exit status when the board path and the host reference
// disagree (1 stays "the command failed").
const exitVerifyMismatch = 3

type boardVerifyFlags struct {
	boardverify.Options
	output string // the JSON report
}

func newBoardVerifyCmd(log *slog.Logger) *cobra.Command {
	var f boardVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify --board HOST|sim --model DIR --names F --dataset DIR",
		Short: "Check on-board results against the host reference: engine outputs bit for bit, detections, mAP",
		Long: `Sends every dataset image through the board path (the deployed agent's
POST /api/verify, or with --board sim the same agent code on the FPGA simulation,
in-process) and through the host reference (quant/qnnmo: first layer, W1A3 engine,
last layer, region decode, NMS), decoding JPEGs as QNN-MO does (stb_image).
Compares the packed engine outputs by SHA-256 (on a mismatch the first such image is
re-run layer by layer to name the first differing layer and channel), the detections
(boxes, classes, scores exactly) and mAP / per-class AP against the dataset's ground
truth (and the float darknet model's with --float-cfg/--float-weights).
Exit status 0 only when everything matches, 3 when something differs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBoardVerify(cmd.Context(), cmd.OutOrStdout(), log, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Board, "board", "", "the agent: HOST[:PORT] or URL (port 8080 by default), or sim (the agent on the FPGA simulation, in-process)")
	fl.StringVar(&f.Model, "model", "", "QNN-MO parameter directory (the host reference; the same the board runs)")
	fl.StringVar(&f.Names, "names", "", "the model's class names file (e.g. voc.names)")
	fl.StringVar(&f.Dataset, "dataset", "", "validation images with ground truth (darknet labels or a VOC tree)")
	fl.StringVar(&f.GTNames, "gt-names", "", "class names of darknet labels (default: classes.names in or beside --dataset)")
	fl.StringVar(&f.output, "output", "", "write the JSON report here")
	fl.StringVar(&f.Token, "token", "", "the agent's bearer token (default $PYNQ_TOKEN)")
	fl.StringVar(&f.Bitstream, "bitstream", "", "sim: the .bit (its .hwh beside it); default: the only .bit in ../bitstream beside --model")
	fl.StringVar(&f.FloatCfg, "float-cfg", "", "float darknet cfg to compare mAP with (optional)")
	fl.StringVar(&f.FloatWeights, "float-weights", "", "float darknet weights (with --float-cfg)")
	fl.StringVar(&f.FloatNames, "float-names", "", "class names of the float model (default --names)")
	fl.Float32Var(&f.Thresh, "thresh", 0.005, "detection threshold (darknet's valid uses .005 for mAP)")
	fl.IntVar(&f.Limit, "limit", 0, "verify only the first N images (0 = all)")
	fl.IntVar(&f.Threads, "threads", 0, "host worker goroutines (0 = GOMAXPROCS)")
	return cmd
}

// simAgentHook, when set (tests), sees the in-process sim agent before verification
// starts (fault injection).
var simAgentHook func(*agent.Agent) error

func runBoardVerify(ctx context.Context, out io.Writer, log *slog.Logger, f boardVerifyFlags) error {
	o := f.Options
	o.AgentLog, o.SimHook = agentLog(log), simAgentHook
	rep, err := boardverify.Run(ctx, o, log)
	if err != nil {
		return err
	}
	if f.output != "" {
		if err := rep.WriteJSON(f.output); err != nil {
			return err
		}
	}
	rep.Print(out)
	if !rep.Match {
		return &exitError{code: exitVerifyMismatch, err: errors.New(rep.Summary())}
	}
	return nil
}
