package deploy

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Deploy time over loopback for a ~10 MB release (stand-in agent plus a random model file):
//
//	go test -run '^$' -bench BenchmarkDeploy -benchtime 5x ./deploy
//
// Fresh: every file is new, so all ~10 MB go over SFTP, are verified and the agent restarts.
// Unchanged: the same release again, so only the switch and the restart happen.

const benchReleaseBytes = 10 << 20

func BenchmarkDeployFresh10MB(b *testing.B) {
	tb := startBoard(b)
	if _, err := tb.deploy(tb.bundle(""), tb.target(), tb.options()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchReleaseBytes)
	for b.Loop() {
		b.StopTimer()
		src := freshSources(b, tb)
		b.StartTimer()
		deployOnce(b, tb, src)
	}
}

func BenchmarkDeployUnchanged10MB(b *testing.B) {
	tb := startBoard(b)
	src := freshSources(b, tb)
	deployOnce(b, tb, src)
	for b.Loop() {
		deployOnce(b, tb, src)
	}
}

// deployOnce is what `pynqctl deploy --agent-binary` does: hash, connect, deploy.
func deployOnce(b *testing.B, tb *testBoard, src Sources) {
	bundle, err := Collect(src)
	if err != nil {
		b.Fatal(err)
	}
	c, err := Dial(context.Background(), tb.target())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	res, err := Deploy(context.Background(), c, bundle, tb.options())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(res.BytesUploaded)/(1<<20), "MiB-uploaded/op")
}

// freshSources makes a release no earlier one shares a byte with: the stand-in agent with
// random bytes appended (the ELF loader ignores them) and a random model file filling
// the release up to benchReleaseBytes.
func freshSources(b *testing.B, tb *testBoard) Sources {
	dir := b.TempDir()
	bin := filepath.Join(dir, "pynq-agent")
	in, err := os.Open(fakeAgent(b))
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(out, in)
	if err == nil {
		_, err = io.CopyN(out, rand.Reader, 64)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	model := make([]byte, max(benchReleaseBytes-n, 1<<20))
	_, _ = rand.Read(model)
	mustWrite(b, filepath.Join(dir, "model", "params.bin"), model, 0o644)
	cfg := tb.bundle("")
	return Sources{AgentBinary: bin, Config: cfg.Files[1].Local, ModelDir: filepath.Join(dir, "model")}
}
