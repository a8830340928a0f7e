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
# The old process must be gone (or a zombie) before the new one binds its port.
if [ -f "$work/engine.pid" ]; then
  pid="\$(cat "$work/engine.pid")"
  kill -9 "\$pid" 2>/dev/null || true
  for _ in \$(seq 1 100); do
    state="\$(awk '/^State:/ {print \$2}' "/proc/\$pid/status" 2>/dev/null || true)"
    [ -z "\$state" ] || [ "\$state" = Z ] && break
    sleep 0.05
  done
  # On a loaded machine the kernel may still be tearing the process down: wait for its port too.
  for _ in \$(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
    sleep 0.05
  done
fi
"$bin" serve --listen "127.0.0.1:$port" --exchange "http://127.0.0.1:$sim_port" \
  --exchange-secret browser-secret --admin-token browser-admin-token --database-url "sqlite://$work/orderkeeper.db" \
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
ADMIN_TOKEN=browser-admin-token RESTART_ENGINE="bash $work/engine.sh" node dashboard.mjs "http://127.0.0.1:$port" \
  || { echo "--- engine log"; tail -n 40 "$work/stderr.log"; exit 1; }

# `orderkeeper demo`, followed by a page opened from the link it prints. Its engine is its child;
# its directory goes under $work.
demo_port="$(free_port)"
demo_sim_port="$(free_port)"
TMPDIR="$work" "$bin" demo --duration 16s --listen "127.0.0.1:$demo_port" \
  --exchange-listen "127.0.0.1:$demo_sim_port" >"$work/demo.out" 2>"$work/demo.err" &
demo_pid=$!
trap 'kill "$demo_pid" "$(cat "$work/engine.pid")" "$sim_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do
  grep -q '^dashboard: ' "$work/demo.out" && break
  sleep 0.1
done
link="$(sed -n 's/^dashboard: //p' "$work/demo.out")"
node demo.mjs "$link" || { cat "$work/demo.out" "$work/demo.err"; exit 1; }
wait "$demo_pid" || { echo "--- the demo failed"; cat "$work/demo.out" "$work/demo.err"; exit 1; }
grep -q '^result: pass$' "$work/demo.out"
tail -n 3 "$work/demo.out"
