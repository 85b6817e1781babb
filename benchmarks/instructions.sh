#!/usr/bin/env bash
# Instructions per keep-alive request and per handshake of the load tool's `mtls` server, counted
# by valgrind (callgrind's total, which repeats on a busy machine where timings do not), for one
# or more builds of `loadtest` side by side:
#
#   benchmarks/instructions.sh target/release/loadtest [OTHER_LOADTEST ...]
#
# For each binary: start `loadtest --server mtls` under callgrind, send it N1 and then N2
# keep-alive requests on one connection (curl, HTTP/1.1, a client certificate the server's
# policies admit), and H new connections of one request each; the difference between runs gives
# instructions per request and per handshake, without start-up and exit. Needs valgrind, openssl,
# curl. Takes about a minute per binary. With KEEP=PREFIX, each run's callgrind file is kept as
# PREFIX.REQUESTS.HANDSHAKES, for callgrind_annotate.
set -euo pipefail

N1=${N1:-200}
N2=${N2:-1200}
H=${H:-50}
KINDS=${KINDS:-mtls}

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# A PKI that the load tool's `mtls` policies admit: trust domain prod.example, a DNS SAN under
# billing.internal, OU engineering, SPIFFE path /ns/billing; TLS 1.3 with ECDSA P-256.
cd "$dir"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=instructions CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem 2>/dev/null
leaf() { # name subject extensions
  openssl ecparam -name prime256v1 -genkey -noout -out "$1.ec" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in "$1.ec" -out "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -sha256 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
leaf server "/CN=localhost" "subjectAltName=DNS:localhost
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature"
leaf client "/CN=billing-api/OU=engineering" "subjectAltName=DNS:api.billing.internal,URI:spiffe://prod.example/ns/billing/sa/api
extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
cd - >/dev/null

# Instructions of one server run that answers `$2` requests on one connection and then `$3`
# one-request connections.
count() { # binary requests handshakes
  local out="$dir/callgrind.$RANDOM" port_file="$dir/port.$RANDOM" fifo="$dir/stdin.$RANDOM"
  mkfifo "$fifo"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$1" --server "$KIND" --pki "$dir" \
    <"$fifo" >"$port_file" 2>/dev/null &
  local pid=$!
  exec 9>"$fifo"
  local port=""
  for _ in $(seq 1 600); do
    port=$(sed -n 's/^port //p' "$port_file" 2>/dev/null || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "the server did not start" >&2; exit 1; }
  local url="https://localhost:$port/api" urls=()
  for _ in $(seq 1 "$2"); do urls+=("$url"); done
  local tls=(--http1.1 --tlsv1.3 --cacert "$dir/ca.pem" --cert "$dir/client.pem" --key "$dir/client.key")
  if [ "$2" -gt 0 ]; then
    curl -sf "${tls[@]}" "${urls[@]}" >/dev/null
  fi
  for _ in $(seq 1 "$3"); do curl -sf "${tls[@]}" "$url" >/dev/null; done
  exec 9>&-
  wait "$pid" || true
  if [ -n "${KEEP:-}" ]; then cp "$out" "$KEEP.$2.$3"; fi
  sed -n 's/^summary: //p' "$out"
}

printf '%-50s %-6s %14s %14s\n' "binary" "server" "instr/request" "instr/handshake"
for bin in "$@"; do
  for KIND in $KINDS; do
    a=$(count "$bin" "$N1" 0)
    b=$(count "$bin" "$N2" 0)
    c=$(count "$bin" "$N1" "$H")
    per_request=$(( (b - a) / (N2 - N1) ))
    per_handshake=$(( (c - a) / H ))
    printf '%-50s %-6s %14d %14d\n' "$bin" "$KIND" "$per_request" "$per_handshake"
  done
done
