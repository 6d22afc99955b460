// fastgate dashboard: plain JavaScript, no build step, no outside resource.
//
// The page reads /tyk/apis, /tyk/keys[/{id}] and the Prometheus endpoint
// with the gateway secret (X-Tyk-Authorization), every second (keys every
// five: up to 21 requests).  Rates are counter deltas between two reads.
// Everything drawn from data goes into the DOM as text (textContent), never
// as markup.
"use strict";

(function () {
  const SECRET_KEY = "fastgate.dashboard.secret";
  const HISTORY = 60;        // seconds of chart
  const QUANTILE_WINDOW = 10; // seconds of latency window
  const MAX_KEYS = 20;
  const MAX_ERRORS = 20;
  const KEYS_EVERY = 5;       // ticks between two key refreshes
  const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
                   "#db2777", "#65a30d", "#ea580c", "#4f46e5", "#0d9488", "#9333ea"];

  const body = document.body;
  const metricsPath = body.dataset.metricsPath || "";
  const hashedKeys = body.dataset.hashedKeys === "true";
  const $ = (id) => document.getElementById(id);

  // -- state (read-only outside: window.fastgateDashboard) ----------------
  const state = {
    signedIn: false,
    apis: [],            // [{api_id, name, listen_path, target, auth: [..]}]
    rates: {},           // api_id -> [{t, v}] requests/s
    refusals: {},        // api_id -> [{t, v}] refusals/s
    latency: {},         // api_id -> {p50, p99} seconds
    errors: [],          // newest first: {time, api_id, kind, reason, count}
    keys: [],
    keysNote: "",
    metricsNote: "",
    ticks: 0,
    lastUpdate: 0,
    failures: 0,
  };
  let previous = null;     // the last metrics read: {t, samples}
  const snapshots = [];    // [{t, histograms}] for latency windows
  let timer = null;
  let busy = false;

  class WrongSecret extends Error {}

  // -- HTTP ---------------------------------------------------------------
  async function request(path, accept) {
    const secret = sessionStorage.getItem(SECRET_KEY) || "";
    const resp = await fetch(path, {
      headers: {"X-Tyk-Authorization": secret, "Accept": accept || "application/json"},
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
    if (resp.status === 403) {
      throw new WrongSecret("wrong secret");
    }
    return resp;
  }

  async function getJSON(path) {
    const resp = await request(path);
    let data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    return {status: resp.status, data};
  }

  // -- Prometheus text format ---------------------------------------------
  // name{label="value",...} value [timestamp]; # HELP / # TYPE lines skipped.
  function parseLabels(text, start) {
    const labels = {};
    let i = start;
    while (i < text.length) {
      while (text[i] === " " || text[i] === ",") i++;
      if (text[i] === "}") return {labels, end: i + 1};
      const eq = text.indexOf("=", i);
      if (eq < 0) throw new Error("bad label");
      const name = text.slice(i, eq).trim();
      i = eq + 1;
      if (text[i] !== '"') throw new Error("bad label value");
      i++;
      let value = "";
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "\\") {
          const next = text[i + 1];
          value += next === "n" ? "\n" : next;
          i += 2;
        } else {
          value += text[i];
          i++;
        }
      }
      labels[name] = value;
      i++;
    }
    throw new Error("unterminated labels");
  }

  function parseNumber(text) {
    if (text === "+Inf" || text === "Inf") return Infinity;
    if (text === "-Inf") return -Infinity;
    return Number(text);
  }

  function parseMetrics(text) {
    const samples = new Map(); // name -> [{labels, value}]
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (line === "" || line[0] === "#") continue;
      let name, labels = {}, rest;
      const brace = line.indexOf("{");
      const space = line.indexOf(" ");
      if (brace >= 0 && (space < 0 || brace < space)) {
        name = line.slice(0, brace);
        const parsed = parseLabels(line, brace + 1);
        labels = parsed.labels;
        rest = line.slice(parsed.end).trim();
      } else {
        name = line.slice(0, space);
        rest = line.slice(space + 1).trim();
      }
      const value = parseNumber(rest.split(/\s+/)[0]);
      if (!samples.has(name)) samples.set(name, []);
      samples.get(name).push({labels, value});
    }
    return samples;
  }

  function series(samples, name) {
    return samples.get(name) || [];
  }

  function sumBy(samples, name, label) {
    const out = {};
    for (const s of series(samples, name)) {
      const key = label ? (s.labels[label] || "") : "";
      out[key] = (out[key] || 0) + s.value;
    }
    return out;
  }

  function seriesKey(labels) {
    return Object.keys(labels).sort().map((k) => k + "=" + labels[k]).join(",");
  }

  // name -> {series key -> value}, for deltas between two reads
  function indexSeries(samples, name) {
    const out = new Map();
    for (const s of series(samples, name)) {
      out.set(seriesKey(s.labels), s);
    }
    return out;
  }

  // histogram name -> group label value -> [[le, cumulative count], ...]
  function histograms(samples, name, label) {
    const out = {};
    for (const s of series(samples, name + "_bucket")) {
      const key = label ? (s.labels[label] || "") : "";
      const le = parseNumber(s.labels.le);
      const buckets = out[key] || (out[key] = new Map());
      buckets.set(le, (buckets.get(le) || 0) + s.value);
    }
    const sorted = {};
    for (const key of Object.keys(out)) {
      sorted[key] = [...out[key].entries()].sort((a, b) => a[0] - b[0]);
    }
    return sorted;
  }

  // As Prometheus' histogram_quantile: linear within the bucket.
  function quantile(q, buckets) {
    if (!buckets || buckets.length === 0) return null;
    const total = buckets[buckets.length - 1][1];
    if (!(total > 0)) return null;
    const rank = q * total;
    let lowerBound = 0, lowerCount = 0;
    for (const [le, count] of buckets) {
      if (count >= rank) {
        if (le === Infinity) return lowerBound;
        if (count === lowerCount) return le;
        return lowerBound + (le - lowerBound) * (rank - lowerCount) / (count - lowerCount);
      }
      lowerBound = le;
      lowerCount = count;
    }
    return lowerBound;
  }

  function minus(now, then) {
    if (!then) return now;
    const back = new Map(then);
    return now.map(([le, count]) => [le, Math.max(0, count - (back.get(le) || 0))]);
  }

  // -- formatting ---------------------------------------------------------
  function fmtRate(v) {
    if (v === undefined || v === null) return "—";
    return v >= 100 ? v.toFixed(0) : v.toFixed(1);
  }

  function fmtSeconds(v) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    if (v < 0.001) return (v * 1e6).toFixed(0) + " µs";
    if (v < 1) return (v * 1000).toFixed(1) + " ms";
    return v.toFixed(2) + " s";
  }

  function fmtTime(ms) {
    return new Date(ms).toLocaleTimeString();
  }

  function apiLabel(apiId) {
    if (!apiId) return "(no API)";
    const api = state.apis.find((a) => a.api_id === apiId);
    return api && api.name ? api.name : apiId;
  }

  // Tyk's ObfuscateKey: a credential is never shown whole.
  function obfuscate(key) {
    return key.length > 4 ? "****" + key.slice(-4) : "--";
  }

  // -- DOM helpers (text only) --------------------------------------------
  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    if (cls) td.className = cls;
    return td;
  }

  function fillTable(id, rows) {
    const tbody = $(id).tBodies[0];
    const fresh = document.createElement("tbody");
    for (const row of rows) {
      const tr = document.createElement("tr");
      for (const [text, cls, title] of row) {
        const td = cell(text, cls);
        if (title) td.title = title;
        tr.appendChild(td);
      }
      fresh.appendChild(tr);
    }
    tbody.replaceWith(fresh);
  }

  function showNote(id, text) {
    const el = $(id);
    el.textContent = text;
    el.hidden = !text;
  }

  // -- APIs ---------------------------------------------------------------
  function enabled(def, path) {
    let v = def;
    for (const part of path.split(".")) {
      if (v === null || typeof v !== "object") return false;
      v = v[part];
    }
    return v === true;
  }

  function authMethods(def) {
    const methods = [];
    if (def.use_keyless) methods.push("keyless");
    if (enabled(def, "use_standard_auth")) methods.push("auth token");
    if (enabled(def, "use_basic_auth")) methods.push("basic");
    if (enabled(def, "enable_jwt")) methods.push("JWT");
    if (enabled(def, "enable_signature_checking")) methods.push("HMAC");
    if (enabled(def, "http_message_signatures.enabled")) methods.push("HTTP signatures");
    if (enabled(def, "use_oauth2")) methods.push("OAuth 2.0");
    if (enabled(def, "external_oauth.enabled")) methods.push("external OAuth");
    if (enabled(def, "use_openid")) methods.push("OpenID Connect");
    if (enabled(def, "use_mutual_tls_auth")) methods.push("mutual TLS");
    if (enabled(def, "enable_coprocess_auth") || enabled(def, "custom_plugin_auth_enabled")) {
      const driver = def.custom_middleware && def.custom_middleware.driver;
      methods.push("custom plugin" + (driver ? " (" + driver + ")" : ""));
    }
    if (enabled(def, "use_go_plugin_auth")) methods.push("Go plugin");
    if (methods.length === 0) methods.push("none");
    return methods;
  }

  function describeApi(def) {
    const proxy = def.proxy || {};
    return {
      api_id: String(def.api_id || ""),
      name: String(def.name || ""),
      listen_path: String(proxy.listen_path || ""),
      target: String(proxy.target_url || ""),
      auth: authMethods(def),
    };
  }

  async function loadApis() {
    const {status, data} = await getJSON("/tyk/apis");
    if (status !== 200 || !Array.isArray(data)) {
      throw new Error("GET /tyk/apis answered " + status);
    }
    state.apis = data.map(describeApi).sort((a, b) => a.name.localeCompare(b.name));
  }

  function renderApis() {
    const rows = state.apis.map((api) => {
      const rate = last(state.rates[api.api_id]);
      const refused = last(state.refusals[api.api_id]);
      const lat = state.latency[api.api_id] || {};
      return [[api.name], [api.api_id, "mono"], [api.listen_path, "mono"], [api.target, "mono"],
              [api.auth.join(", ")], [fmtRate(rate), "num"], [fmtRate(refused), "num"],
              [fmtSeconds(lat.p50), "num"], [fmtSeconds(lat.p99), "num"]];
    });
    fillTable("apis", rows);
  }

  function last(points) {
    return points && points.length ? points[points.length - 1].v : undefined;
  }

  // -- keys ---------------------------------------------------------------
  function fmtExpires(expires) {
    if (!expires || expires <= 0) return "never";
    const text = new Date(expires * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
    return expires * 1000 < Date.now() ? text + " (expired)" : text;
  }

  function fmtQuota(session) {
    const max = session.quota_max;
    if (max === undefined || max === null || max < 0) return "unlimited";
    if (max === 0) return "none";
    return String(session.quota_remaining) + " / " + String(max);
  }

  function fmtRateLimit(session) {
    if (!session.rate || session.rate <= 0) return "—";
    return String(session.rate) + " per " + String(session.per) + " s";
  }

  async function loadKeys() {
    const {status, data} = await getJSON("/tyk/keys");
    if (status !== 200 || !data || !Array.isArray(data.keys)) {
      const message = data && (data.message || data.error);
      state.keys = [];
      state.keysNote = "The gateway refused to list keys (" + status + "): " +
        (message || "no reason given") +
        (hashedKeys ? ". With hash_keys on, listing needs enable_hashed_keys_listing." : "");
      return;
    }
    const ids = data.keys.slice(0, MAX_KEYS);
    state.keysNote = data.keys.length > MAX_KEYS
      ? "Showing " + MAX_KEYS + " of " + data.keys.length + " keys." : "";
    const details = await Promise.all(ids.map(async (id) => {
      const path = "/tyk/keys/" + encodeURIComponent(id) + (hashedKeys ? "?hashed=true" : "");
      const detail = await getJSON(path);
      return {id, status: detail.status, session: detail.data};
    }));
    state.keys = details.map(({id, status, session}) => {
      const shown = hashedKeys ? id : obfuscate(id);
      if (status !== 200 || !session) {
        return {key: shown, missing: true};
      }
      return {
        key: shown,
        alias: String(session.alias || ""),
        policies: (session.apply_policies || []).map(String),
        apis: Object.keys(session.access_rights || {}),
        rate: fmtRateLimit(session),
        quota: fmtQuota(session),
        quota_remaining: session.quota_remaining,
        quota_max: session.quota_max,
        expires: fmtExpires(session.expires),
      };
    });
  }

  function renderKeys() {
    showNote("keys-note", state.keysNote);
    fillTable("keys", state.keys.map((k) => k.missing
      ? [[k.key, "mono"], ["(gone)"], [""], [""], [""], [""], [""]]
      : [[k.key, "mono", k.key], [k.alias], [k.policies.join(", ") || "—"],
         [k.apis.join(", ") || "all (master key)"], [k.rate, "num"], [k.quota, "num"],
         [k.expires]]));
  }

  // -- metrics ------------------------------------------------------------
  function pushPoint(map, apiId, t, v) {
    const points = map[apiId] || (map[apiId] = []);
    points.push({t, v});
    while (points.length && points[0].t < t - HISTORY * 1000) points.shift();
  }

  function noteErrors(t, samples, name, kind, label, filter) {
    const now = indexSeries(samples, name);
    const before = indexSeries(previous.samples, name);
    for (const [key, s] of now) {
      if (filter && !filter(s.labels)) continue;
      const old = before.get(key);
      const delta = s.value - (old ? old.value : 0);
      if (delta > 0) {
        state.errors.unshift({time: t, api_id: s.labels.api_id || "", kind,
                              reason: label(s.labels), count: delta});
      }
    }
  }

  function applyMetrics(t, samples) {
    if (previous) {
      const dt = (t - previous.t) / 1000;
      const req = sumBy(samples, "fastgate_requests_total", "api_id");
      const reqBefore = sumBy(previous.samples, "fastgate_requests_total", "api_id");
      const ref = sumBy(samples, "fastgate_refused_total", "api_id");
      const refBefore = sumBy(previous.samples, "fastgate_refused_total", "api_id");
      const ids = new Set([...Object.keys(req), ...Object.keys(ref),
                           ...state.apis.map((a) => a.api_id)]);
      for (const id of ids) {
        // A counter that went down: the gateway restarted; count from zero.
        const dr = (req[id] || 0) - (reqBefore[id] || 0);
        const df = (ref[id] || 0) - (refBefore[id] || 0);
        pushPoint(state.rates, id, t, Math.max(0, dr < 0 ? req[id] || 0 : dr) / dt);
        pushPoint(state.refusals, id, t, Math.max(0, df < 0 ? ref[id] || 0 : df) / dt);
      }
      noteErrors(t, samples, "fastgate_auth_failures_total", "auth",
                 (l) => (l.auth_method || "?") + ": " + (l.reason || "?"));
      noteErrors(t, samples, "fastgate_limit_refusals_total", "limit",
                 (l) => l.limit || "?");
      noteErrors(t, samples, "fastgate_requests_total", "5xx",
                 (l) => (l.method || "") + " answered " + (l.status_class || "5xx"),
                 (l) => l.status_class === "5xx");
      state.errors.splice(MAX_ERRORS);
    }
    // Latency: the histogram's increase over the last QUANTILE_WINDOW
    // seconds, else everything since the gateway started.
    const hist = histograms(samples, "fastgate_request_duration_seconds", "api_id");
    const redis = histograms(samples, "fastgate_redis_roundtrip_seconds", "");
    snapshots.push({t, hist, redis});
    while (snapshots.length > 1 && snapshots[0].t < t - QUANTILE_WINDOW * 1000) snapshots.shift();
    const base = snapshots[0] === snapshots[snapshots.length - 1] ? null : snapshots[0];
    state.latency = {};
    for (const id of Object.keys(hist)) {
      let window = minus(hist[id], base && base.hist[id]);
      if (!(window.length && window[window.length - 1][1] > 0)) window = hist[id];
      state.latency[id] = {p50: quantile(0.5, window), p99: quantile(0.99, window)};
    }
    let redisWindow = minus(redis[""] || [], base && base.redis[""]);
    if (!(redisWindow.length && redisWindow[redisWindow.length - 1][1] > 0)) {
      redisWindow = redis[""] || [];
    }
    state.redisP99 = quantile(0.99, redisWindow);
    previous = {t, samples};
  }

  function renderHealth(samples) {
    const info = series(samples, "fastgate_info")[0];
    $("version").textContent = info && info.labels.version ? "version " + info.labels.version : "";
    const errorsNow = sumBy(samples, "fastgate_redis_errors_total", "")[""] || 0;
    const before = state.redisErrorsBefore;
    state.redisErrorsBefore = errorsNow;
    const reloads = sumBy(samples, "fastgate_reloads_total", "result");
    const items = [
      ["Client connections", String(sumBy(samples, "fastgate_client_connections", "")[""] || 0)],
      ["Redis errors", String(errorsNow) +
        (before !== undefined && errorsNow > before ? " (+" + (errorsNow - before) + " in the last second)" : "")],
      ["Redis round trip p99", fmtSeconds(state.redisP99)],
      ["Reloads", Object.keys(reloads).sort().map((r) => r + ": " + reloads[r]).join(", ") || "0"],
    ];
    const dl = $("health");
    dl.replaceChildren();
    for (const [name, value] of items) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dl.append(dt, dd);
    }
    const caches = {};
    for (const s of series(samples, "fastgate_cache_lookups_total")) {
      const c = caches[s.labels.cache || "?"] || (caches[s.labels.cache || "?"] = {hit: 0, all: 0});
      c.all += s.value;
      if (s.labels.result === "hit") c.hit += s.value;
    }
    fillTable("caches", Object.keys(caches).sort().map((name) => [
      [name], [caches[name].all ? (100 * caches[name].hit / caches[name].all).toFixed(1) + " %" : "—", "num"],
      [String(caches[name].all), "num"]]));
    fillTable("upstreams", series(samples, "fastgate_upstream_connections").map((s) => [
      [s.labels.upstream || "", "mono"], [s.labels.state || ""], [String(s.value), "num"]]));
  }

  function renderErrors() {
    fillTable("errors", state.errors.map((e) => [
      [fmtTime(e.time)], [apiLabel(e.api_id)], [e.kind], [e.reason], [String(e.count), "num"]]));
    $("errors-empty").hidden = state.errors.length > 0;
  }

  // -- charts (canvas) ----------------------------------------------------
  function colourOf(apiId) {
    const index = state.apis.findIndex((a) => a.api_id === apiId);
    let n = index;
    if (n < 0) {  // not a loaded API ("" or one just removed): after theirs
      n = 0;
      for (const ch of apiId) n = (n * 31 + ch.charCodeAt(0)) >>> 0;
      n = state.apis.length + (n % Math.max(1, COLOURS.length - state.apis.length));
    }
    return COLOURS[n % COLOURS.length];
  }

  function niceMax(v) {
    if (v <= 1) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function drawChart(canvasId, legendId, data, now) {
    const canvas = $(canvasId);
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 600;
    const height = canvas.clientHeight || 200;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const left = 48, right = 8, top = 8, bottom = 20;
    const w = width - left - right, h = height - top - bottom;
    const ids = Object.keys(data).filter((id) => data[id].some((p) => p.v > 0) ||
                                                 state.apis.some((a) => a.api_id === id));
    let max = 0;
    for (const id of ids) for (const p of data[id]) max = Math.max(max, p.v);
    max = niceMax(max);
    ctx.strokeStyle = "#d4d4d8";
    ctx.fillStyle = "#52525b";
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + h - (h * i) / 4;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + w, y);
      ctx.stroke();
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      ctx.fillText(fmtRate((max * i) / 4), left - 6, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const s of [60, 45, 30, 15, 0]) {
      ctx.fillText(s ? "-" + s + " s" : "now", left + w - (w * s) / HISTORY, top + h + 4);
    }
    const x = (t) => left + w - (w * (now - t)) / (HISTORY * 1000);
    const y = (v) => top + h - (h * v) / max;
    ctx.lineWidth = 2;
    for (const id of ids) {
      const points = data[id];
      if (points.length === 0) continue;
      ctx.strokeStyle = colourOf(id);
      ctx.beginPath();
      points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.v)) : ctx.moveTo(x(p.t), y(p.v))));
      ctx.stroke();
    }
    const legend = $(legendId);
    legend.replaceChildren();
    for (const id of ids) {
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.backgroundColor = colourOf(id);
      const label = document.createElement("span");
      label.textContent = apiLabel(id) + " " + fmtRate(last(data[id]));
      li.append(swatch, label);
      legend.appendChild(li);
    }
  }

  // -- the loop -----------------------------------------------------------
  async function tick() {
    if (busy || !state.signedIn) return;
    busy = true;
    try {
      await loadApis();
      if (state.ticks % KEYS_EVERY === 0) {
        await loadKeys();
        renderKeys();
      }
      let samples = null;
      if (metricsPath) {
        const resp = await request(metricsPath, "text/plain");
        if (resp.status === 200) {
          const t = Date.now();
          samples = parseMetrics(await resp.text());
          applyMetrics(t, samples);
          state.metricsNote = "";
        } else {
          state.metricsNote = "The metrics endpoint " + metricsPath + " answered " + resp.status + ".";
        }
      } else {
        state.metricsNote = "Prometheus metrics are off (prometheus.enabled): no rates, latencies or health.";
      }
      showNote("metrics-note", state.metricsNote);
      const now = Date.now();
      drawChart("chart-requests", "legend-requests", state.rates, now);
      drawChart("chart-refusals", "legend-refusals", state.refusals, now);
      renderApis();
      renderErrors();
      if (samples) renderHealth(samples);
      state.ticks++;
      state.lastUpdate = now;
      state.failures = 0;
      $("status").textContent = "updated " + fmtTime(now);
    } catch (err) {
      if (err instanceof WrongSecret) {
        signOut("wrong secret");
      } else {
        state.failures++;
        $("status").textContent = "gateway unreachable (" + (err && err.message) + "), retrying";
      }
    } finally {
      busy = false;
    }
  }

  function showBoard() {
    $("login-view").hidden = true;
    $("board").hidden = false;
    $("logout").hidden = false;
  }

  function signOut(message) {
    sessionStorage.removeItem(SECRET_KEY);
    state.signedIn = false;
    if (timer !== null) {
      clearInterval(timer);
      timer = null;
    }
    previous = null;
    snapshots.length = 0;
    $("board").hidden = true;
    $("logout").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = message || "";
    $("status").textContent = "";
    $("secret").value = "";
    $("secret").focus();
  }

  async function signIn() {
    state.signedIn = true;
    state.ticks = 0;
    $("login-error").textContent = "";
    try {
      // One request first: a wrong secret shows the form again at once.
      const resp = await request("/tyk/apis");
      if (!resp.ok) throw new Error("GET /tyk/apis answered " + resp.status);
    } catch (err) {
      if (err instanceof WrongSecret) {
        signOut("wrong secret");
      } else {
        signOut("cannot reach the gateway: " + (err && err.message));
      }
      return;
    }
    showBoard();
    await tick();
    if (state.signedIn && timer === null) timer = setInterval(tick, 1000);
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(SECRET_KEY, $("secret").value);
    $("secret").value = "";
    signIn();
  });
  $("logout").addEventListener("click", () => signOut(""));

  function copy(value) {
    return JSON.parse(JSON.stringify(value));
  }

  // Read-only view for tests and the curious: copies, never the live state.
  window.fastgateDashboard = Object.freeze({
    get signedIn() { return state.signedIn; },
    get apis() { return copy(state.apis); },
    get rates() { return copy(state.rates); },
    get refusals() { return copy(state.refusals); },
    get latency() { return copy(state.latency); },
    get errors() { return copy(state.errors); },
    get keys() { return copy(state.keys); },
    get keysNote() { return state.keysNote; },
    get metricsNote() { return state.metricsNote; },
    get ticks() { return state.ticks; },
    get lastUpdate() { return state.lastUpdate; },
    parseMetrics: (text) => {
      const out = {};
      for (const [name, list] of parseMetrics(text)) out[name] = list;
      return out;
    },
    quantile,
  });

  if (sessionStorage.getItem(SECRET_KEY)) {
    signIn();
  } else {
    signOut("");
  }
})();
