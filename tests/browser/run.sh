#!/usr/bin/env bash
# Starts the engine (embedded exchange, fresh SQLite file) and drives its dashboard in headless
# Chromium. Needs /usr/bin/chromium (Debian's chromium) and node.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${ORDERKEEPER_BIN:-$here/../../target/debug/orderkeeper}"
work="$(mktemp -d)"
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port="$(free_port)"
sim_port="$(free_port)"

"$bin" serve --listen "127.0.0.1:$port" --exchange-listen "127.0.0.1:$sim_port" \
  --database-url "sqlite://$work/orderkeeper.db" --poll-interval-ms 500 --outbox-retention 2 --audit-interval 1 >"$work/stdout.log" 2>"$work/stderr.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

for _ in $(seq 1 100); do
  node -e "fetch('http://127.0.0.1:$port/readyz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))" && break
  sleep 0.1
done

cd "$here"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
node dashboard.mjs "http://127.0.0.1:$port" || { echo "--- engine log"; tail -n 40 "$work/stderr.log"; exit 1; }
