package agent

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSimPipeline runs the sim daemon's pipeline on the fixtures' photos (looping,
// as fast as it goes) and reports end-to-end frames/s, per-stage ms (moving averages)
// and the engine simulation's share of the summed stage time.
//
//	go test -run=^$ -bench=SimPipeline -benchtime=40x ./agent
func BenchmarkSimPipeline(b *testing.B) {
	cfg := simConfig(b)
	loop := true
	cfg.Source.Loop = &loop
	a, err := New(context.Background(), cfg, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	pub := &countingPub{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Serve(ctx, pub) }()
	waitFor(b, "warm-up", func() bool { return pub.n.Load() >= 3 })
	b.ResetTimer()
	start, n0, cpu0 := time.Now(), pub.n.Load(), cpuTime()
	for pub.n.Load() < n0+int64(b.N) {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	sn := a.Pipeline().Stats()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
	var total float64
	for _, s := range sn.StageOrder {
		total += sn.StagesMS[s]
		b.ReportMetric(sn.StagesMS[s], s+"-ms")
	}
	b.ReportMetric(100*sn.StagesMS[StageEngine]/total, "engine-%")
	b.ReportMetric(sn.LatencyMS, "latency-ms")
	// CPU time per frame does not depend on what else the machine runs: 2 cores can at
	// best do 2000/cpu-ms frames/s.
	b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/frame")
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
