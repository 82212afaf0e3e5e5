#!/bin/sh
# Overhead of kernel telemetry on the sim pipeline's frames/s, off and on alternately
# in one run: the agent's BenchmarkSimPipeline runs N times without telemetry and N
# times while this package's TestHoldForProcess has the probes loaded for its tgid.
# Needs root (BPF) and ../shared/fixtures. Usage: agent/telemetry/bench_pipeline.sh [rounds] [frames]
set -eu
cd "$(dirname "$0")/../.."
rounds=${1:-3}
frames=${2:-20}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/agent.test" ./agent
go test -c -o "$tmp/telemetry.test" ./agent/telemetry
bench() { (cd agent && "$tmp/agent.test" -test.run '^$' -test.bench SimPipeline -test.benchtime "${frames}x" | grep '^BenchmarkSimPipeline'); }
for i in $(seq "$rounds"); do
	echo "off $(bench)"
	TELEMETRY_HOLD_COMM=agent.test "$tmp/telemetry.test" -test.run HoldForProcess -test.v >"$tmp/hold.log" 2>&1 &
	holder=$!
	echo "on  $(bench)"
	wait "$holder" || true
	grep 'run-queue' "$tmp/hold.log" || cat "$tmp/hold.log"
done
