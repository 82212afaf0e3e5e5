#!/usr/bin/env bash
# Installs onnxruntime's shared library for the host-side reference tests and benchmarks
# (package internal/ort) from the npm package onnxruntime-node into <repo>/.cache/onnxruntime.
# The version is pinned to the ORT C API that github.com/yalue/onnxruntime_go (see go.mod)
# was built against: onnxruntime_go v1.27.0 <-> onnxruntime 1.24.1 (ORT_API_VERSION 24).
# Idempotent: a second run finds the library and only prints its path.
# ONNXRUNTIME_NODE_INSTALL=skip stops the package's install hook from downloading CUDA
# binaries (the CPU library ships inside the npm tarball itself).
set -euo pipefail

ORT_VERSION="${ORT_VERSION:-1.24.1}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$repo/.cache/onnxruntime"

find_lib() {
	local f
	for f in "$prefix"/node_modules/onnxruntime-node/bin/napi-v*/linux/x64/libonnxruntime.so*; do
		if [[ -f "$f" ]]; then
			echo "$f"
			return 0
		fi
	done
	return 1
}

installed_version() {
	local pkg="$prefix/node_modules/onnxruntime-node/package.json"
	[[ -f "$pkg" ]] && sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg" | head -n1
}

if [[ "$(installed_version || true)" != "$ORT_VERSION" ]] || ! find_lib >/dev/null; then
	command -v npm >/dev/null || { echo "install-onnxruntime: npm not found (apt-get install -y npm)" >&2; exit 1; }
	mkdir -p "$prefix"
	ONNXRUNTIME_NODE_INSTALL=skip npm install --silent --no-audit --no-fund --prefix "$prefix" "onnxruntime-node@$ORT_VERSION" >&2
fi

lib="$(find_lib)" || { echo "install-onnxruntime: libonnxruntime.so not found under $prefix after install" >&2; exit 1; }
echo "$lib"
