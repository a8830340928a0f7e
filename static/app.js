// The orderkeeper dashboard: one ES module, no build step. It follows the account's live feed,
// resuming with `since` after any disconnect, and talks to the JSON API for everything else.

const $ = (id) => document.getElementById(id);

const state = {
  token: "",
  socket: null,
  lastSeq: 0,
  recovered: new Set(),
  startedAt: null,
  orders: new Map(),
  selected: null,
  retryDelay: 500,
  prices: new Map(), // symbol -> [cents, ...]
  positions: [], // GET /v1/positions
};

// ---- money: decimal strings <-> integer cents, never floats ----
function toCents(text) {
  const match = /^(\d+)(?:\.(\d{1,2}))?$/.exec(String(text ?? "").trim());
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? "").padEnd(2, "0"));
}
function fromCents(cents) {
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  const whole = Math.floor(abs / 100).toLocaleString("en-IN");
  return `${sign}${whole}.${String(abs % 100).padStart(2, "0")}`;
}
const money = (text) => (text == null ? "—" : fromCents(toCents(text)));
// Profit and loss may be below zero.
function signedCents(text) {
  const negative = String(text ?? "").startsWith("-");
  const cents = toCents(negative ? String(text).slice(1) : text);
  return cents == null ? null : negative ? -cents : cents;
}
// 24-hour local time: short enough for the orders table's first column.
const clock = (time) => new Date(time).toLocaleTimeString([], { hour12: false });

// ---- API ----
async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, ...(options.headers ?? {}) };
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new Error(body?.error?.message ?? response.statusText);
    error.code = body?.error?.code;
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---- the live feed ----
function setConnection(kind, text) {
  $("connection").dataset.state = kind;
  $("connection-text").textContent = text;
}

function connect() {
  if (state.socket) state.socket.close();
  if (!state.token) return setConnection("offline", "no token");
  setConnection("connecting", "connecting…");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/stream`);
  state.socket = socket;
  socket.onopen = () => {
    pollAudit();
    socket.send(JSON.stringify({ type: "auth", token: state.token, since: state.lastSeq }));
    setConnection("live", `live · seq ${state.lastSeq}`);
    state.retryDelay = 500;
    refreshBalances();
    loadFaults();
  };
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "resync") {
      // The events since our last one are no longer kept: reload the state, go on from here.
      state.lastSeq = event.latest_seq;
      reloadOrders();
      return;
    }
    if (event.type !== "event") return;
    if (event.seq <= state.lastSeq) return; // already seen
    if (event.seq !== state.lastSeq + 1) {
      // A gap: start again from the last event we hold.
      socket.close();
      return;
    }
    state.lastSeq = event.seq;
    applyEvent(event);
    setConnection("live", `live · seq ${state.lastSeq}`);
  };
  socket.onclose = (close) => {
    if (state.socket !== socket) return;
    if (close.code === 4401) {
      setConnection("offline", "token refused");
      return;
    }
    const wait = state.retryDelay;
    state.retryDelay = Math.min(wait * 2, 10000);
    setConnection("connecting", close.code === 4008 ? "catching up…" : `reconnecting in ${Math.round(wait / 1000)}s`);
    setTimeout(() => state.socket === socket && connect(), wait);
  };
}

async function reloadOrders() {
  try {
    const orders = await api("/v1/orders?status=all&limit=1000");
    for (const order of orders.reverse()) {
      state.orders.set(order.id, order);
      renderOrder(order, false);
    }
    refreshBalances();
    setConnection("live", `live · reloaded at seq ${state.lastSeq}`);
  } catch (error) {
    setConnection("connecting", `reload failed: ${error.message}`);
  }
}

let balanceTimer = null;
function applyEvent(event) {
  const order = event.order;
  state.orders.set(order.id, order);
  if (event.kind === "order.recovered") state.recovered.add(order.id);
  renderOrder(order, true);
  $("seq-info").textContent = `${state.orders.size} order${state.orders.size === 1 ? "" : "s"} · event ${event.seq}`;
  clearTimeout(balanceTimer);
  balanceTimer = setTimeout(refreshBalances, 250);
  if (state.selected === order.id) loadDetail(order.id);
}

// ---- orders table ----
function renderOrder(order, flash) {
  let row = document.querySelector(`tr[data-id="${order.id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.id = order.id;
    row.addEventListener("click", (e) => {
      if (e.target.closest("button")) return;
      selectOrder(order.id);
    });
    $("orders").prepend(row);
  }
  const pct = Math.round((100 * order.filled_qty) / order.qty);
  const open = !["filled", "canceled", "rejected", "expired", "pending_cancel"].includes(order.status);
  const modifiable = order.type === "limit" && ["new", "partially_filled"].includes(order.status);
  row.dataset.status = order.status;
  row.innerHTML = `
    <td class="mono">${clock(order.created_at)}</td>
    <td><strong>${order.symbol}</strong></td>
    <td class="side-${order.side}">${order.side.toUpperCase()}</td>
    <td>${order.type.replace("_", " ")}${order.stop_price ? ` @ ${money(order.stop_price)}` : ""} · ${order.time_in_force ?? "gtc"}</td>
    <td class="num${modifiable ? " editable" : ""}" data-edit="qty" title="${modifiable ? "Click to change the quantity" : ""}">${order.filled_qty} / ${order.qty}<span class="progress"><span style="width:${pct}%"></span></span></td>
    <td class="num${modifiable ? " editable" : ""}" data-edit="limit_price" title="${modifiable ? "Click to change the limit" : ""}">${money(order.limit_price)}</td>
    <td class="num">${money(order.filled_avg_price)}</td>
    <td><span class="badge ${order.status}">${order.status.replace("_", " ")}</span></td>
    <td>${open ? '<button type="button" class="cancel-btn">Cancel</button>' : ""}</td>`;
  row.querySelector(".cancel-btn")?.addEventListener("click", () => cancelOrder(order.id));
  if (modifiable) {
    row.querySelectorAll("td.editable").forEach((cell) =>
      cell.addEventListener("click", (e) => {
        e.stopPropagation();
        modifyOrder(order, cell.dataset.edit);
      }),
    );
  }
  row.classList.toggle("selected", state.selected === order.id);
  row.classList.toggle("recovered", state.recovered.has(order.id));
  if (flash) {
    row.classList.add("flash");
    requestAnimationFrame(() => requestAnimationFrame(() => row.classList.remove("flash")));
  }
  $("orders-empty").hidden = state.orders.size > 0;
}

async function cancelOrder(id) {
  try {
    await api(`/v1/orders/${id}`, { method: "DELETE" });
  } catch (error) {
    alert(`Cancel failed: ${error.message}`);
  }
}

// Modify in place: one Idempotency-Key per change, reused on every retry, as for new orders.
async function modifyOrder(order, field) {
  const now = field === "qty" ? String(order.qty) : order.limit_price;
  const asked = prompt(field === "qty" ? "New quantity" : "New limit price", now);
  if (asked === null || asked.trim() === "" || asked.trim() === now) return;
  const body = field === "qty" ? { qty: Number(asked) } : { limit_price: asked.trim() };
  const key = crypto.randomUUID();
  for (let attempt = 1; ; attempt++) {
    try {
      await api(`/v1/orders/${order.id}`, { method: "PATCH", body: JSON.stringify(body), headers: { "Idempotency-Key": key } });
      return;
    } catch (error) {
      const retryable = error.status === undefined || error.status >= 500 || error.code === "idempotency_key_in_use";
      if (error.status === 423) refreshHalt();
      if (!retryable || attempt >= 6) {
        alert(`Modify failed: ${error.message}`);
        return;
      }
      await new Promise((r) => setTimeout(r, 300 * attempt));
    }
  }
}

async function cancelAll() {
  if (!confirm("Cancel every open order?")) return;
  try {
    const pending = await api("/v1/orders", { method: "DELETE" });
    $("seq-info").textContent = `${pending.length} order${pending.length === 1 ? "" : "s"} cancelling`;
  } catch (error) {
    alert(`Cancel all failed: ${error.message}`);
  }
}

async function selectOrder(id) {
  state.selected = id;
  document.querySelectorAll("#orders tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.id === id));
  $("detail").hidden = false;
  $("detail-id").textContent = id;
  await loadDetail(id);
}

async function loadDetail(id) {
  const [fills, actions] = await Promise.all([api(`/v1/orders/${id}/fills`), api(`/v1/orders/${id}/actions`)]);
  if (state.selected !== id) return;
  $("fills").innerHTML = fills.length
    ? fills.map((f) => `<tr><td class="mono">${f.fill_id}</td><td class="num">${f.qty}</td><td class="num">${money(f.price)}</td><td><span class="badge">${f.source}</span></td><td class="mono">${clock(f.received_at)}</td></tr>`).join("")
    : `<tr><td colspan="5" class="muted">No fills yet.</td></tr>`;
  $("actions").innerHTML = actions
    .map((a) => `<li><span class="kind">${a.seq}. ${a.kind.replace("_", " ")}</span><span class="at">${clock(a.at)}</span><span class="info">${escapeHtml(JSON.stringify(a.detail))}</span></li>`)
    .join("");
}

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// ---- balances ----
async function refreshBalances() {
  if (!state.token) return;
  try {
    const balances = await api("/v1/balances");
    $("cash-available").textContent = money(balances.cash.available);
    $("cash-reserved").textContent = money(balances.cash.reserved);
    $("positions").innerHTML = Object.entries(balances.positions)
      .map(([symbol, p]) => `<tr><td><strong>${symbol}</strong></td><td class="num">${p.available}</td><td class="num">${p.reserved}</td></tr>`)
      .join("");
    state.positions = await api("/v1/positions");
    renderPnl();
  } catch (error) {
    if (error.status === 401) setConnection("offline", "token refused");
  }
}

// Unrealized P&L is marked live at the last price polled, in integer cents: (last − avg) × qty.
function renderPnl() {
  const cell = (cents) => `<td class="num ${cents == null ? "" : cents < 0 ? "loss" : "gain"}">${cents == null ? "—" : fromCents(cents)}</td>`;
  $("pnl").innerHTML = (state.positions ?? [])
    .map((p) => {
      const last = (state.prices.get(p.symbol) ?? []).at(-1) ?? signedCents(p.last_price);
      const unrealized = last == null ? null : (last - toCents(p.avg_cost)) * p.qty;
      return `<tr data-symbol="${escapeHtml(p.symbol)}"><td><strong>${escapeHtml(p.symbol)}</strong></td><td class="num">${p.qty}</td><td class="num">${money(p.avg_cost)}</td>${cell(unrealized)}${cell(signedCents(p.realized_pnl))}</tr>`;
    })
    .join("");
}

// ---- the order ticket: one Idempotency-Key per order, reused on every retry ----
function ticketValues() {
  const form = $("ticket");
  const data = new FormData(form);
  const body = { symbol: data.get("symbol"), side: data.get("side"), type: data.get("type"), qty: Number(data.get("qty")) };
  if (body.type === "limit" || body.type === "stop_limit") body.limit_price = String(data.get("limit_price")).trim();
  if (body.type === "stop" || body.type === "stop_limit") body.stop_price = String(data.get("stop_price")).trim();
  const tif = data.get("time_in_force");
  if (tif && tif !== "gtc") body.time_in_force = tif;
  return body;
}

function updateTicket() {
  const body = ticketValues();
  $("limit-row").hidden = body.limit_price === undefined;
  $("stop-row").hidden = body.stop_price === undefined;
  const price =
    body.limit_price !== undefined
      ? toCents(body.limit_price)
      : body.stop_price !== undefined
        ? toCents(body.stop_price)
        : (state.prices.get(body.symbol) ?? []).at(-1);
  const qty = Number.isInteger(body.qty) && body.qty > 0 ? body.qty : null;
  $("estimate").textContent = price != null && qty ? `≈ ${fromCents(price * qty)}${body.type === "market" ? " at the last price" : ""}` : "";
  $("submit-order").textContent = `${body.side === "buy" ? "Buy" : "Sell"} ${body.symbol ?? ""}`;
}

async function submitOrder(event) {
  event.preventDefault();
  const body = ticketValues();
  const key = crypto.randomUUID();
  const button = $("submit-order");
  const message = $("ticket-message");
  button.disabled = true;
  message.className = "message";
  message.textContent = "Sending…";
  for (let attempt = 1; ; attempt++) {
    try {
      const order = await api("/v1/orders", { method: "POST", body: JSON.stringify(body), headers: { "Idempotency-Key": key } });
      message.className = "message ok";
      message.textContent = `Order ${order.id.slice(0, 8)}… placed`;
      break;
    } catch (error) {
      // A network error or 409/5xx may hide an order that was recorded: retry with the same key.
      const retryable = error.status === undefined || error.status === 409 || error.status >= 500;
      if (error.status === 423) refreshHalt();
      if (!retryable || attempt >= 6) {
        message.className = "message error";
        message.textContent = error.message;
        break;
      }
      message.textContent = `Retrying (${attempt})…`;
      await new Promise((r) => setTimeout(r, 300 * attempt));
    }
  }
  button.disabled = false;
}

// ---- prices ----
async function pollPrices() {
  if (state.token) {
    try {
      const prices = await api("/v1/prices");
      const select = $("symbol");
      for (const [symbol, price] of Object.entries(prices)) {
        const series = state.prices.get(symbol) ?? [];
        series.push(toCents(price));
        if (series.length > 120) series.shift();
        state.prices.set(symbol, series);
        if (![...select.options].some((o) => o.value === symbol)) select.add(new Option(symbol, symbol));
      }
      renderCharts();
      renderPnl();
      updateTicket();
    } catch {
      /* the next poll tries again */
    }
  }
  setTimeout(pollPrices, 1000);
}

function renderCharts() {
  const charts = $("charts");
  for (const [symbol, series] of state.prices) {
    let chart = charts.querySelector(`[data-symbol="${symbol}"]`);
    if (!chart) {
      chart = document.createElement("div");
      chart.className = "chart";
      chart.dataset.symbol = symbol;
      chart.innerHTML = `<span class="sym">${symbol}</span><svg viewBox="0 0 120 34" preserveAspectRatio="none"><polyline fill="none" stroke-width="1.5"/></svg><span class="last"></span>`;
      charts.append(chart);
    }
    const min = Math.min(...series);
    const max = Math.max(...series);
    const span = Math.max(max - min, 1);
    const points = series.map((v, i) => `${(i * 120) / Math.max(series.length - 1, 1)},${32 - ((v - min) / span) * 30}`).join(" ");
    const rising = series.at(-1) >= series[0];
    const line = chart.querySelector("polyline");
    line.setAttribute("points", points);
    line.setAttribute("stroke", rising ? "#0f8a5f" : "#c93c37");
    const last = chart.querySelector(".last");
    last.textContent = fromCents(series.at(-1));
    last.className = `last ${rising ? "up" : "down"}`;
  }
}

// ---- exchange faults (embedded simulator) ----
async function loadFaults() {
  try {
    showFaults(await api("/v1/exchange/faults"));
  } catch (error) {
    $("faults-message").textContent = error.status === 404 ? "Only for the embedded exchange." : error.message;
  }
}

function showFaults(faults) {
  for (const [name, value] of Object.entries(faults)) {
    const input = document.querySelector(`#faults-form input[name="${name}"]`);
    if (!input) continue;
    if (input.type === "checkbox") input.checked = value === input.value;
    else input.value = value;
  }
  updateFaultLabels();
}

function faultsFromForm(form) {
  const faults = {};
  for (const input of form.querySelectorAll("input[name]")) {
    if (input.type === "checkbox") faults[input.name] = input.checked ? input.value : "ok";
    else faults[input.name] = Number(input.value);
  }
  return faults;
}

function updateFaultLabels() {
  document.querySelectorAll("#faults-form output").forEach((out) => {
    const input = document.querySelector(`#faults-form input[name="${out.dataset.for}"]`);
    out.textContent = `${Math.round(Number(input.value) * 100)}%`;
  });
}

// Changing the exchange's faults is an operator's act: it takes the admin token, kept for this tab only.
async function putFaults(faults) {
  const admin = $("admin-token").value.trim();
  sessionStorage.setItem("orderkeeper.admin", admin);
  try {
    const headers = { Authorization: `Bearer ${admin}` };
    showFaults(await api("/v1/exchange/faults", { method: "PUT", body: JSON.stringify(faults), headers }));
    $("faults-message").className = "message ok";
    $("faults-message").textContent = "Applied.";
  } catch (error) {
    $("faults-message").className = "message error";
    $("faults-message").textContent = error.message;
  }
}

// ---- the money audit's badge, and the banner after a restart ----
function showRestart(health) {
  const r = health.recovery ?? {};
  const at = clock(health.started_at);
  $("recovery-text").textContent =
    `Engine restarted at ${at}; ${r.picked_up ?? 0} open order${r.picked_up === 1 ? "" : "s"} picked up, ` +
    `${r.recovered ?? 0} carried on by recovery, ${r.fills_recovered ?? 0} fill${r.fills_recovered === 1 ? "" : "s"} recovered by polling.`;
  $("recovery-banner").hidden = false;
}

// A halt set by the operator: new orders and modifies are refused (423) until it is lifted.
async function refreshHalt() {
  if (!state.token) return;
  try {
    const trading = await api("/v1/trading");
    const banner = $("halt-banner");
    banner.hidden = !trading.halted;
    banner.textContent = trading.engine_halted
      ? "Trading is halted for every account: new orders and modifies are refused; cancels go through."
      : "Trading is halted for this account: new orders and modifies are refused; cancels go through.";
  } catch {
    /* the next poll tries again */
  }
}

async function pollAudit() {
  refreshHalt();
  try {
    const health = await (await fetch("/healthz")).json();
    if (state.startedAt && health.started_at !== state.startedAt) showRestart(health);
    else if (state.startedAt === health.started_at && !$("recovery-banner").hidden) showRestart(health);
    state.startedAt = health.started_at;
    const audit = health.audit;
    const badge = $("audit-badge");
    if (!audit) {
      badge.dataset.state = "unknown";
      $("audit-text").textContent = "audit: not yet run";
    } else if (audit.ok) {
      badge.dataset.state = "pass";
      $("audit-text").textContent = `audit passed · ${clock(audit.at)}`;
    } else {
      badge.dataset.state = "fail";
      $("audit-text").textContent = `audit FAILED: ${audit.failing.join(", ")} (${audit.violations})`;
    }
  } catch {
    // The engine is restarting; the next poll tells.
  }
}

// ---- start ----
function useToken(token) {
  state.token = token.trim();
  state.lastSeq = 0;
  state.orders.clear();
  state.selected = null;
  $("orders").innerHTML = "";
  $("detail").hidden = true;
  localStorage.setItem("orderkeeper.token", state.token);
  connect();
}

async function start() {
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    useToken($("token").value);
  });
  $("ticket").addEventListener("submit", submitOrder);
  $("cancel-all").addEventListener("click", cancelAll);
  $("ticket").addEventListener("input", updateTicket);
  $("detail-close").addEventListener("click", () => {
    state.selected = null;
    $("detail").hidden = true;
  });
  $("faults-form").addEventListener("input", updateFaultLabels);
  $("faults-form").addEventListener("submit", (e) => {
    e.preventDefault();
    putFaults(faultsFromForm(e.target));
  });
  $("recovery-demo").addEventListener("click", () => putFaults({ drop_rate: 1 }));
  $("admin-token").value = sessionStorage.getItem("orderkeeper.admin") ?? "";
  pollAudit();
  setInterval(pollAudit, 2000);
  $("recovery-close").addEventListener("click", () => {
    $("recovery-banner").hidden = true;
  });

  // A link may carry the token in its fragment (never sent to the server): `orderkeeper demo`
  // prints one. It is taken, then dropped from the address bar.
  const linked = new URLSearchParams(location.hash.slice(1)).get("token");
  if (linked) history.replaceState(null, "", location.pathname + location.search);
  let token = linked ?? localStorage.getItem("orderkeeper.token") ?? "";
  if (!token) {
    const demo = await fetch("/demo.json").then((r) => (r.ok ? r.json() : null)).catch(() => null);
    token = demo?.token ?? "";
  }
  $("token").value = token;
  updateTicket();
  pollPrices();
  if (token) useToken(token);
}

start();
