#!/usr/bin/env bash
# Instructions per full mutual-TLS handshake, in memory, with each client of the
# `client_handshake` bench (mtls-tower/benches/client_handshake.rs): callgrind runs it with 10
# and with 40 handshakes, and the difference over 30 is the cost of one handshake (client and
# server sides together), without start-up and the PKI's generation. Instruction counts repeat
# on a busy machine where timings do not.
#
#   cargo bench -p mtls-tower --bench client_handshake --no-run
#   benchmarks/client-handshake.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$(ls -t target/release/deps/client_handshake-* | grep -v '\.d$' | sed -n 1p)}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

count() { # mode n -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1.$2" "$bin" "$1" "$2" >/dev/null 2>&1
  grep -E '^(summary|totals):' "$out/cg.$1.$2" | sed -n 1p | awk '{print $2}'
}

printf '%-20s %16s\n' mode "per handshake"
for mode in plain hostname policy policy-spiffe-only; do
  a=$(count "$mode" 10)
  b=$(count "$mode" 40)
  printf '%-20s %16d\n' "$mode" $(( (b - a) / 30 ))
done
