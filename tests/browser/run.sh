#!/usr/bin/env bash
# Starts the exchange simulator and the engine (fresh SQLite file) and drives the dashboard in
# headless Chromium; the script kills the engine with SIGKILL and starts it again through
# $RESTART_ENGINE while the page is open. Needs /usr/bin/chromium (Debian's chromium) and node.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${ORDERKEEPER_BIN:-$here/../../target/debug/orderkeeper}"
work="$(mktemp -d)"
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port="$(free_port)"
sim_port="$(free_port)"

"$bin" exchange-sim --listen "127.0.0.1:$sim_port" --webhook-secret browser-secret \
  --webhook-url "http://127.0.0.1:$port/v1/exchange/events" >"$work/sim.log" 2>&1 &
sim_pid=$!
cat >"$work/engine.sh" <<SCRIPT
#!/usr/bin/env bash
# Kills the engine if it runs (SIGKILL), then starts it again in the background.
[ -f "$work/engine.pid" ] && kill -9 "\$(cat "$work/engine.pid")" 2>/dev/null || true
"$bin" serve --listen "127.0.0.1:$port" --exchange "http://127.0.0.1:$sim_port" \
  --exchange-secret browser-secret --database-url "sqlite://$work/orderkeeper.db" \
  --poll-interval-ms 500 --outbox-retention 2 --audit-interval 1 >>"$work/stdout.log" 2>>"$work/stderr.log" &
echo \$! >"$work/engine.pid"
SCRIPT
bash "$work/engine.sh"
trap 'kill "$(cat "$work/engine.pid")" "$sim_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

for _ in $(seq 1 100); do
  node -e "fetch('http://127.0.0.1:$port/readyz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))" && break
  sleep 0.1
done

cd "$here"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
RESTART_ENGINE="bash $work/engine.sh" node dashboard.mjs "http://127.0.0.1:$port" \
  || { echo "--- engine log"; tail -n 40 "$work/stderr.log"; exit 1; }
