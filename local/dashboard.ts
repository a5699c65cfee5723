/**
 * The local dashboard served at `/` by the local stack: one self-contained page (no CDN,
 * works offline) that reads the same HTTP API billing jobs use: per-tenant usage and cost
 * (pay-per-token plus allocated fixed cost) over the last 7 days, tier, quota bar and current
 * decision, tokens per hour over those days (idle hours show as gaps), recent enforcement
 * events, quarantine. A rolling window rather than the calendar month: on the 1st of a month
 * the month has no finished hour yet, and the window still shows the days before.
 */
export const DASHBOARD_HTML = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>GenAI usage metering (local)</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { --bg:#0f172a; --panel:#111c33; --ink:#e2e8f0; --mute:#94a3b8; --ok:#22c55e; --warn:#f59e0b; --bad:#ef4444; --acc:#38bdf8; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--ink); }
  header { padding:14px 20px; display:flex; gap:16px; align-items:baseline; border-bottom:1px solid #1e293b; }
  header h1 { font-size:18px; margin:0; }
  header .meta { color:var(--mute); }
  main { display:grid; grid-template-columns: 1fr 1fr; gap:16px; padding:16px 20px; }
  section { background:var(--panel); border-radius:8px; padding:12px 14px; min-width:0; }
  section h2 { font-size:14px; margin:0 0 10px; color:var(--mute); font-weight:600; text-transform:uppercase; letter-spacing:.04em; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:4px 6px; border-bottom:1px solid #1e293b; white-space:nowrap; }
  td.decision { white-space:normal; }
  td.wrap { white-space:normal; word-break:break-word; }
  .scroll { overflow-x:auto; }
  td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
  tr.tenant { cursor:pointer; }
  tr.tenant:hover, tr.tenant.sel { background:#1e293b; }
  .bar { position:relative; height:10px; width:120px; background:#1e293b; border-radius:5px; overflow:hidden; display:inline-block; vertical-align:middle; }
  .bar > span { position:absolute; left:0; top:0; bottom:0; border-radius:5px; }
  .pill { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; }
  .allow { background:#14532d; color:#bbf7d0; } .downgrade { background:#78350f; color:#fde68a; } .throttle { background:#7f1d1d; color:#fecaca; } .unknown { background:#334155; }
  .wide { grid-column: 1 / -1; }
  svg text { fill: var(--mute); font-size:11px; }
  #status { color:var(--mute); }
  .empty { color:var(--mute); font-style:italic; }
</style>
</head>
<body>
<header><h1>GenAI usage metering</h1><span class="meta" id="month"></span><span id="status">loading…</span></header>
<main>
  <section class="wide">
    <h2>Tenants, <span id="window"></span> (cost = pay-per-token + allocated fixed endpoint cost; quota and decision: this month)</h2>
    <div class="scroll"><table id="tenants"><thead><tr><th>tenant</th><th>tier</th><th class="num">requests</th><th class="num">tokens</th><th class="num">cost USD</th><th class="num">of it fixed</th><th>quota</th><th>decision</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section>
    <h2>Cost per tenant (USD, last 7 days)</h2>
    <div id="costChart"></div>
  </section>
  <section>
    <h2>Tokens per hour, last 7 days: <span id="selTenant">-</span></h2>
    <div id="timeChart"></div>
  </section>
  <section class="wide">
    <h2>Recent enforcement events</h2>
    <table id="events"><thead><tr><th>time</th><th>tenant</th><th>event</th><th>tier</th><th>period</th><th>usage / quota</th><th>instead</th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide">
    <h2>Scheduled jobs (GET /local/jobs; run one: POST /local/jobs/{name})</h2>
    <table id="jobs"><thead><tr><th>job</th><th>schedule</th><th>next run</th><th>last run</th><th>result</th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide">
    <h2>Quarantine (today)</h2>
    <table id="quarantine"><thead><tr><th>received</th><th>reason</th><th>tenant</th><th>message</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
const $ = (s) => document.querySelector(s);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&":"&amp;", "<":"&lt;", ">":"&gt;", '"':"&quot;", "'":"&#39;" }[c]));
const fmt = (n, d = 0) => Number(n ?? 0).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const DAYS = 7;
const today = new Date().toISOString().slice(0, 10);
const month = today.slice(0, 7);
const from = new Date(Date.parse(today + "T00:00:00Z") - (DAYS - 1) * 86400000).toISOString().slice(0, 10);
const months = [...new Set([from.slice(0, 7), month])];
let selected = null;

async function getJson(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(path + " -> " + r.status);
  return r.json();
}
async function maybe(path) { try { return await getJson(path); } catch { return null; } }

/** Tenants with usage in the window's months (billing route), with their totals over the window (usage route). */
async function tenantsInWindow() {
  const ids = new Set();
  for (const m of months) {
    let cursor;
    for (let i = 0; i < 50; i++) {
      const page = await getJson("/billing/" + m + "?limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
      page.tenants.forEach((t) => ids.add(t.tenantId)); cursor = page.cursor; if (!cursor) break;
    }
  }
  const out = await Promise.all([...ids].map(async (tenantId) => {
    const u = await getJson("/usage/" + encodeURIComponent(tenantId) + "?granularity=day&from=" + from + "&to=" + today);
    return { tenantId, totals: u.totals };
  }));
  return out.filter((t) => t.totals.requests > 0 || (t.totals.allocatedCostUsd || 0) > 0).sort((a, b) => a.tenantId.localeCompare(b.tenantId));
}

function quotaOf(decision) {
  const u = decision && (decision.usage || decision.monthly || {});
  const q = decision && (decision.quota || {});
  const used = u.tokens ?? u.totalTokens, limit = q.monthlyTokens ?? q.tokens;
  if (used == null || !limit) return null;
  return { used, limit, pct: used / limit };
}

function bar(p) {
  const pct = Math.min(1, p.pct), color = p.pct >= 1 ? "var(--bad)" : p.pct >= 0.8 ? "var(--warn)" : "var(--ok)";
  return '<span class="bar" title="' + fmt(p.used) + " / " + fmt(p.limit) + ' tokens"><span style="width:' + (pct * 100).toFixed(1) + "%;background:" + color + '"></span></span> ' + fmt(p.pct * 100) + "%";
}

function hbars(el, rows) {
  if (!rows.length) { el.innerHTML = '<p class="empty">no usage yet</p>'; return; }
  const max = Math.max(...rows.map((r) => r.value), 1e-9), h = 16, w = 460, lw = 90;
  let s = '<svg width="100%" viewBox="0 0 ' + w + " " + rows.length * h + '" role="img" aria-label="cost per tenant">';
  rows.forEach((r, i) => {
    const bw = ((w - lw - 70) * r.value) / max;
    s += '<text x="0" y="' + (i * h + 12) + '">' + esc(r.label) + "</text>";
    s += '<rect x="' + lw + '" y="' + (i * h + 3) + '" width="' + bw.toFixed(1) + '" height="11" fill="' + r.color + '"></rect>';
    s += '<text x="' + (lw + bw + 4) + '" y="' + (i * h + 12) + '">' + fmt(r.value, 4) + "</text>";
  });
  el.innerHTML = s + "</svg>";
}

/** One column per hour of the window (hours without usage stay empty), a tick and date per day. */
function columns(el, points) {
  if (!points.some((p) => p.tokens > 0)) { el.innerHTML = '<p class="empty">no usage in the last ' + DAYS + ' days</p>'; return; }
  const w = 460, h = 160, pad = 34, max = Math.max(...points.map((p) => p.tokens), 1);
  const bw = (w - pad) / points.length;
  let s = '<svg width="100%" viewBox="0 0 ' + w + " " + (h + 20) + '" role="img" aria-label="tokens per hour">';
  points.forEach((p, i) => {
    const x = pad + i * bw;
    if (p.label.endsWith(" 00:00")) {
      s += '<line x1="' + x.toFixed(1) + '" y1="0" x2="' + x.toFixed(1) + '" y2="' + h + '" stroke="#1e293b"></line>';
      if (x < w - 30) s += '<text x="' + (x + 2).toFixed(1) + '" y="' + (h + 15) + '">' + esc(p.label.slice(5, 10)) + "</text>";
    }
    if (p.tokens <= 0) return;
    const bh = Math.max(1, ((h - 10) * p.tokens) / max);
    s += '<rect x="' + x.toFixed(1) + '" y="' + (h - bh).toFixed(1) + '" width="' + Math.max(1, bw - 0.5).toFixed(2) + '" height="' + bh.toFixed(1) + '" fill="var(--acc)"><title>' + esc(p.label) + ": " + fmt(p.tokens) + " tokens, $" + fmt(p.cost, 4) + "</title></rect>";
  });
  s += '<text x="0" y="10">' + fmt(max) + '</text><text x="0" y="' + h + '">0</text>';
  el.innerHTML = s + "</svg>";
}

async function showTenant(id) {
  selected = id;
  $("#selTenant").textContent = id;
  document.querySelectorAll("tr.tenant").forEach((tr) => tr.classList.toggle("sel", tr.dataset.id === id));
  const u = await getJson("/usage/" + encodeURIComponent(id) + "?granularity=hour&from=" + from + "&to=" + today);
  const byHour = new Map(u.periods.map((p) => [p.period, p.totals]));
  const points = [];
  for (let t = Date.parse(from + "T00:00:00Z"); t <= Date.now(); t += 3600000) {
    const hour = new Date(t).toISOString().slice(0, 13), p = byHour.get(hour);
    points.push({ label: hour.replace("T", " ") + ":00", tokens: p ? p.inputTokens + p.outputTokens : 0, cost: p ? p.costUsd + (p.allocatedCostUsd || 0) : 0 });
  }
  columns($("#timeChart"), points);
}

async function refresh() {
  try {
    const tenants = await tenantsInWindow();
    const extra = await Promise.all(tenants.map(async (t) => ({
      config: await maybe("/tenants/" + encodeURIComponent(t.tenantId) + "/config"),
      decision: await maybe("/tenants/" + encodeURIComponent(t.tenantId) + "/decision"),
    })));
    const tierColor = { basic: "#a78bfa", advanced: "#38bdf8", premium: "#f472b6" };
    $("#tenants tbody").innerHTML = tenants.map((t, i) => {
      const d = extra[i].decision, tier = (d && d.tier) || (extra[i].config && extra[i].config.tier) || "-";
      const q = quotaOf(d), decision = (d && d.decision) || "unknown";
      return '<tr class="tenant" data-id="' + esc(t.tenantId) + '"><td>' + esc(t.tenantId) + "</td><td>" + esc(tier) + '</td><td class="num">' + fmt(t.totals.requests) +
        '</td><td class="num">' + fmt(t.totals.inputTokens + t.totals.outputTokens) + '</td><td class="num" title="API $' + fmt(t.totals.costUsd, 4) + " + allocated fixed $" + fmt(t.totals.allocatedCostUsd || 0, 4) + '">' + fmt(t.totals.costUsd + (t.totals.allocatedCostUsd || 0), 4) +
        (t.totals.unpricedRequests ? ' <span class="pill unpriced" title="calls without a list price, not in this cost: add the price, then npm run cli -- reprice">' + fmt(t.totals.unpricedRequests) + " unpriced</span>" : "") +
        '</td><td class="num">' + fmt(t.totals.allocatedCostUsd || 0, 4) + "</td><td>" + (q ? bar(q) : "-") + '</td><td class="decision"><span class="pill ' + esc(decision) + '">' + esc(decision) + (d && d.targetModelId ? " → " + esc(d.targetModelId.split(".").pop()) : "") + "</span></td></tr>";
    }).join("") || '<tr><td colspan="8" class="empty">no usage in the last ' + DAYS + ' days</td></tr>';
    document.querySelectorAll("tr.tenant").forEach((tr) => tr.addEventListener("click", () => showTenant(tr.dataset.id)));
    hbars($("#costChart"), tenants.slice(0, 40).map((t, i) => {
      const d = extra[i].decision, tier = ((d && d.tier) || (extra[i].config && extra[i].config.tier) || "").toLowerCase();
      return { label: t.tenantId, value: t.totals.costUsd + (t.totals.allocatedCostUsd || 0), color: tierColor[tier] || "#64748b" };
    }));
    const ev = await maybe("/enforcement/events?day=" + today);
    const events = (ev && (ev.events || ev.items)) || [];
    $("#events tbody").innerHTML = events.slice(0, 50).map((e) => {
      const d = e.detail || e;
      const usage = d.usage ? fmt(d.usage.tokens) : "", quota = d.quota ? fmt(d.quota.monthlyTokens ?? d.quota.tokens ?? d.quota.limit) : "";
      return "<tr><td>" + esc((d.occurredAt || e.at || "").replace("T", " ").slice(0, 19)) + "</td><td>" + esc(d.tenantId) + "</td><td>" + esc(e["detail-type"] || e.detailType || d.action) + "</td><td>" + esc(d.tier) +
        "</td><td>" + esc(d.period) + "</td><td>" + usage + (quota ? " / " + quota : "") + "</td><td>" + esc(d.targetModelId || (d.retryAfterSeconds ? "retry in " + d.retryAfterSeconds + " s" : "")) + "</td></tr>";
    }).join("") || '<tr><td colspan="7" class="empty">none today</td></tr>';
    const q = await maybe("/quarantine?day=" + today + "&limit=50");
    $("#quarantine tbody").innerHTML = ((q && q.items) || []).map((i) => "<tr><td>" + esc(i.receivedAt.slice(11, 19)) + "</td><td>" + esc(i.reason) + "</td><td>" + esc(i.tenantId || "") + "</td><td>" + esc(i.message).slice(0, 140) + "</td></tr>").join("") || '<tr><td colspan="4" class="empty">nothing quarantined today</td></tr>';
    const jobs = await maybe("/local/jobs");
    $("#jobs tbody").innerHTML = ((jobs && jobs.jobs) || []).map((j) => {
      const r = j.lastRun, when = (iso) => (iso ? esc(iso.replace("T", " ").slice(0, 16)) + "Z" : "-");
      const outcome = !r ? "-" : r.ok ? esc(JSON.stringify(r.result)).slice(0, 160) : '<span class="pill throttle">failed</span> ' + esc(r.error.name + ": " + r.error.message).slice(0, 160);
      return "<tr><td>" + esc(j.name) + "</td><td>" + esc(j.schedule) + "</td><td>" + (jobs.scheduling ? when(j.nextRunAt) : "not scheduled") + "</td><td>" + (r ? when(r.time) + " (" + esc(r.trigger) + ")" : "-") + '</td><td class="wrap">' + outcome + "</td></tr>";
    }).join("") || '<tr><td colspan="5" class="empty">no jobs</td></tr>';
    if (!selected && tenants.length) await showTenant(tenants[0].tenantId);
    else if (selected) await showTenant(selected);
    $("#status").textContent = "updated " + new Date().toLocaleTimeString() + " · " + tenants.length + " tenants";
    document.body.dataset.ready = "true";
  } catch (e) {
    $("#status").textContent = "error: " + e.message;
    document.body.dataset.ready = "error";
  }
}
$("#month").textContent = from + " .. " + today + " (UTC)";
$("#window").textContent = "last " + DAYS + " days";
// the next refresh starts 5 s after the last one ended: a slow one never piles up behind itself
(async function loop() { await refresh(); setTimeout(loop, 5000); })();
</script>
</body>
</html>
`;
