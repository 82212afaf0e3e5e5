package boardverify_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/fpgadetector/pynq-agent/agent/boardverify"
)

// Verify a board (here the agent's code on the FPGA simulation, in-process; a board is
// "pynq" or "192.168.2.99:8080") against the host reference on a validation set, and say
// where they part. (Not run by go test: it needs the QNN-MO fixtures.)
func ExampleRun() {
	rep, err := boardverify.Run(context.Background(), boardverify.Options{
		Board:     "sim",
		Model:     "qnn-mo-pynq/params",
		Names:     "qnn-mo-pynq/voc.names",
		Bitstream: "qnn-mo-pynq/bitstream/W1A3-pynqZ1-Z2.bit",
		Dataset:   "chairs/val",
		Thresh:    0.005,
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	rep.Print(os.Stdout)
	if !rep.Match {
		fmt.Println(rep.Summary())
	}
}
