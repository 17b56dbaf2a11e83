// superfed's operator dashboard: plain JS, no build step, no third-party code.
// Live through the status event stream, read with fetch() because EventSource cannot send the
// Authorization header (and a token in the URL would end up in access logs). Each message on
// the stream, keep-alives included (every 15 s at most), refreshes the views: health changes
// arrive as events, job changes are picked up on the next message.
// Everything the API returns is put in the page as text (textContent), never as HTML: site
// names, facility messages and job names are not trusted markup.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "superfed.token";
const JOBS_SHOWN = 25;
const EVENTS_SHOWN = 50;
// at most one refresh (four requests) a second: a flapping facility sends bursts of events,
// which would otherwise spend the token's rate limit, shared with its other clients
const REFRESH_GAP_MS = 1000;

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let isAdmin = false;
let stream = null; // the AbortController of the open event stream
let refreshing = null; // the refresh in flight; messages arriving meanwhile ask for one more
let again = false;
let loadedAt = 0; // performance.now() when the status was read: ages tick from there
let status = { sites: [] };
let sites = {};
let overview = { sites: [] };

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${token}` }, options.headers || {});
  const resp = await fetch(API + path, Object.assign({}, options, { headers, cache: "no-store" }));
  if (!resp.ok) {
    let detail = resp.statusText;
    try {
      const doc = await resp.json();
      detail = doc.detail || doc.title || detail;
    } catch (_) { /* not a problem document */ }
    throw new ApiError(resp.status, `${resp.status}: ${detail}`);
  }
  if (resp.status === 204) return null;
  return resp.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function showError(text) {
  const box = $("error");
  box.textContent = text || "";
  box.classList.toggle("hidden", !text);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleTimeString();
}

// ---- the views ----

function renderSites() {
  const box = $("sites");
  const byName = Object.fromEntries(overview.sites.map((o) => [o.site, o]));
  const elapsed = (performance.now() - loadedAt) / 1000;
  $("strategy").textContent = overview.strategy ? `placement: ${overview.strategy}` : "";
  box.replaceChildren(...status.sites.map((s) => siteTile(s, sites[s.site] || {}, byName[s.site], elapsed)));
}

function siteTile(s, cfg, ov, elapsed) {
  const flags = [];
  if (cfg.enabled === false) flags.push(el("span", { class: "badge flag", "data-flag": "disabled" }, "disabled"));
  if (cfg.draining) flags.push(el("span", { class: "badge flag", "data-flag": "draining" }, "draining"));
  const tile = el("article", { class: `tile state-${s.state}`, "data-site": s.site, "data-state": s.state },
    el("h3", {}, el("span", {}, s.site, " ", el("small", { class: "meta" }, cfg.kind || "")),
      el("span", {}, ...flags, " ", el("span", { class: `badge ${s.state}`, "data-role": "state" }, s.state))),
    el("p", { class: "meta", "data-role": "age" },
      `reading ${age(s.age_s === null ? null : s.age_s + elapsed)} old`,
      s.latency_ms !== null && s.latency_ms !== undefined ? ` · check took ${Math.round(s.latency_ms)} ms` : "",
      s.consecutive_failures ? ` · ${s.consecutive_failures} failed checks` : ""),
    s.error ? el("p", { class: "meta" }, s.error) : null,
    el("ul", { class: "components" }, s.components.map((c) =>
      el("li", { class: c.state, title: c.detail || "" }, `${c.name}: ${c.state}`))),
    s.incidents.length ? el("ul", { class: "incidents" }, s.incidents.map(incident)) : null,
    s.demoted ? el("p", { class: "meta" }, `demoted: ${s.demoted}`) : null,
  );
  if (ov) {
    const j = ov.jobs;
    const rate = ov.failure_rate === null ? "–" : `${Math.round(ov.failure_rate * 100)}%`;
    tile.append(
      el("div", { class: "numbers" },
        num(j.queued, "queued"), num(j.active, "active"), num(j.completed + j.failed + j.canceled, "finished"),
        num(ov.throughput_per_min.toFixed(1), "jobs/min"), num(rate, "failed"), num(ov.backlog, "backlog")),
      el("p", { class: "meta", "data-role": "placement" }, ov.placement.eligible
        ? `placement now: choice ${ov.placement.rank} (score ${ov.placement.score})`
        : "placement now: not chosen"),
      el("ul", { class: "why" }, ov.placement.reasons.map((r) => el("li", {}, r))),
    );
  }
  if (isAdmin) {
    tile.append(el("div", { class: "actions" },
      el("button", { type: "button", "data-action": "drain", onclick: () => siteAction(s.site, "drain") }, "Drain"),
      el("button", { type: "button", "data-action": "enable", onclick: () => siteAction(s.site, "enable") }, "Enable"),
      el("button", { type: "button", "data-action": "edit", onclick: () => editSite(s.site) }, "Edit config")));
  }
  return tile;
}

function num(value, label) {
  return el("div", {}, el("b", {}, value), el("span", {}, label));
}

function incident(i) {
  // adapters/types.py Incident: summary, component, kind, status, start, end
  const span = i.start ? `${when(i.start)}${i.end ? `–${when(i.end)}` : ""}` : "";
  const words = [i.summary || i.id, [...new Set([i.kind, i.status].filter(Boolean))].join(", "), span].filter(Boolean);
  return el("li", { class: i.status === "resolved" ? "resolved" : null }, words.join(" — "));
}

function renderJobs(page) {
  const body = $("jobs").tBodies[0];
  body.replaceChildren(...page.items.map((j) => {
    const p = j.placement || {};
    const chosen = (p.ranking || []).find((r) => r.site === p.site);
    const why = chosen ? chosen.reasons.join("; ") : (p.ranking || []).map((r) => `${r.site}: ${r.reasons.join(", ")}`).join("; ");
    return el("tr", { "data-job": j.id, "data-state": j.state },
      el("td", {}, el("a", { href: `#job/${encodeURIComponent(j.id)}` }, j.id)),
      el("td", {}, j.name || ""),
      el("td", {}, j.project),
      el("td", { class: `state ${j.state}` }, j.state),
      el("td", {}, j.site || "–"),
      el("td", {}, String((j.attempts || []).length)),
      el("td", {}, why),
      el("td", {}, when(j.updated_at)));
  }));
  $("jobs-note").textContent = `the ${page.items.length} newest`;
}

let shownJob = null;

async function showJob(id) {
  const box = $("job-detail");
  if (shownJob !== id) box.replaceChildren(el("p", {}, "loading…")); // a refresh keeps the page until it has the new one
  shownJob = id;
  $("job-view").classList.remove("hidden");
  let j;
  try {
    j = await api(`/jobs/${encodeURIComponent(id)}`);
  } catch (e) {
    box.replaceChildren(el("p", { class: "error" }, e.message));
    return;
  }
  const p = j.placement || {};
  box.replaceChildren(
    el("h2", {}, `Job ${j.id} `, el("span", { class: "badge flag", "data-role": "job-state" }, j.state)),
    el("dl", { class: "fields" },
      ...field("name", j.name), ...field("project", j.project), ...field("site", j.site),
      ...field("system", j.system), ...field("native id", j.native_id), ...field("native state", j.native_state),
      ...field("exit code", j.exit_code), ...field("message", j.message), ...field("created", j.created_at),
      ...field("updated", j.updated_at), ...field("placement", p.site ? `${p.site} (${p.strategy})` : p.strategy)),
    el("h3", {}, "History"),
    table(["state", "at", "detail"], (j.history || []).map((h) => [h.state, h.at, h.detail || ""]), "history"),
    el("h3", {}, "Attempts"),
    table(["site", "at", "outcome", "native id", "error"],
      (j.attempts || []).map((a) => [a.site, a.at, a.outcome, a.native_id || "", a.error || ""])),
    el("h3", {}, "Placement ranking"),
    table(["site", "eligible", "score", "reasons"],
      (p.ranking || []).map((r) => [r.site, r.eligible ? "yes" : "no", r.score ?? "", r.reasons.join("; ")])),
  );
}

function field(name, value) {
  if (value === null || value === undefined || value === "") return [];
  return [el("dt", {}, name), el("dd", {}, String(value))];
}

function table(head, rows, role) {
  return el("div", { class: "scroll" }, el("table", { "data-role": role },
    el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, String(c))))))));
}

function logEvent(text) {
  const list = $("events");
  list.prepend(el("li", {}, `${new Date().toLocaleTimeString()} ${text}`));
  while (list.children.length > EVENTS_SHOWN) list.lastChild.remove();
}

// ---- reading the API ----

async function refresh() {
  // one refresh at a time; a message during one asks for another after it
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      again = false;
      const started = performance.now();
      try {
        const [st, list, ov, jobs] = await Promise.all([
          api("/status"), api("/sites"), api("/overview"), api(`/jobs?limit=${JOBS_SHOWN}`)]);
        status = st;
        sites = Object.fromEntries(list.map((s) => [s.name, s]));
        overview = ov;
        loadedAt = performance.now();
        renderSites();
        renderJobs(jobs);
        const m = location.hash.match(/^#job\/(.+)$/);
        if (m) await showJob(decodeURIComponent(m[1]));
        showError("");
      } catch (e) {
        showError(e.status === 401 ? "The token was refused (401): give another." : `Could not read the API: ${e.message}`);
        if (e.status === 401) return logout();
      }
      const rest = REFRESH_GAP_MS - (performance.now() - started);
      if (again && rest > 0) await new Promise((r) => setTimeout(r, rest));
    } while (again && token);
  })();
  try {
    await refreshing;
  } finally {
    refreshing = null;
  }
}

async function whoAmI() {
  // the audit log is admin-only: its answer says whether to offer the admin actions
  try {
    await api("/audit?limit=1");
    isAdmin = true;
  } catch (e) {
    if (e.status === 401) throw e;
    isAdmin = false;
  }
  $("who").textContent = isAdmin ? "admin: actions enabled" : "read-only";
}

// The event stream, parsed as the SSE format says: events are separated by a blank line,
// each line "field: value"; lines starting with ":" are comments (the server's keep-alives).
async function listen() {
  let delay = 1000;
  while (token) {
    const ctl = new AbortController();
    stream = ctl;
    try {
      const resp = await fetch(`${API}/status/events`, {
        headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
        signal: ctl.signal, cache: "no-store",
      });
      if (resp.status === 401) {
        showError("The token was refused (401): give another.");
        return logout();
      }
      if (!resp.ok || !resp.body) throw new Error(`event stream: ${resp.status}`);
      setLive(true);
      delay = 1000;
      await readEvents(resp.body.getReader());
    } catch (e) {
      if (ctl.signal.aborted) return;
      logEvent(`stream interrupted (${e.message}); reconnecting`);
    }
    setLive(false);
    if (stream !== ctl) return;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 15000);
    refresh(); // what changed while the stream was down
  }
}

async function readEvents(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      onMessage(block);
    }
  }
}

function onMessage(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const name = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (name === "event") event = value;
    else if (name === "data") data.push(value);
  }
  if (event === "health" && data.length) {
    try {
      const h = JSON.parse(data.join("\n"));
      const what = h.component ? `${h.site}/${h.component}` : h.site;
      logEvent(`${what}: ${h.previous || "?"} → ${h.state}${h.detail ? ` (${h.detail})` : ""}`);
    } catch (_) {
      logEvent("health event (unreadable)");
    }
  } else if (event === "end") {
    logEvent(`stream ended: ${data.join(" ")}`);
  }
  refresh();
}

function setLive(on) {
  const live = $("live");
  live.textContent = on ? "live" : "offline";
  live.className = `live ${on ? "on" : "off"}`;
}

// ---- admin actions ----

async function siteAction(site, action) {
  try {
    await api(`/sites/${encodeURIComponent(site)}/${action}`, { method: "POST" });
    logEvent(`${action} ${site}: done`);
  } catch (e) {
    showError(`${action} ${site}: ${e.message}`);
  }
  refresh();
}

let editing = null; // {site, revision}

async function editSite(site) {
  try {
    const doc = await api(`/sites/${encodeURIComponent(site)}/config`);
    editing = { site, revision: doc.revision };
    $("editor-site").textContent = site;
    $("editor-rev").textContent = String(doc.revision);
    $("editor-text").value = JSON.stringify(doc.config, null, 2);
    $("editor-error").classList.add("hidden");
    $("editor").showModal();
  } catch (e) {
    showError(`config of ${site}: ${e.message}`);
  }
}

async function saveSite(event) {
  event.preventDefault();
  if (!editing) return;
  const err = $("editor-error");
  let body;
  try {
    body = JSON.parse($("editor-text").value);
  } catch (e) {
    err.textContent = `not JSON: ${e.message}`;
    err.classList.remove("hidden");
    return;
  }
  try {
    // If-Match: the revision read, so that someone else's change in between is a 412, not lost
    await api(`/sites/${encodeURIComponent(editing.site)}`, {
      method: "PUT", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "If-Match": `"${editing.revision}"` },
    });
    logEvent(`config of ${editing.site} saved`);
    $("editor").close();
    editing = null;
    refresh();
  } catch (e) {
    err.textContent = e.status === 412 ? `${e.message} (changed since you opened it: cancel and open it again)` : e.message;
    err.classList.remove("hidden");
  }
}

// ---- the token ----

async function login(value) {
  token = value.trim();
  if (!token) return;
  try {
    await whoAmI();
  } catch (e) {
    showError(e.status === 401 ? "The token was refused (401)." : `Could not reach the API: ${e.message}`);
    token = "";
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("login").classList.add("hidden");
  $("logout").classList.remove("hidden");
  $("app").classList.remove("hidden");
  $("token").value = "";
  await refresh();
  listen();
}

function logout() {
  token = "";
  isAdmin = false;
  sessionStorage.removeItem(TOKEN_KEY);
  if (stream) stream.abort();
  stream = null;
  setLive(false);
  $("who").textContent = "";
  $("login").classList.remove("hidden");
  $("logout").classList.add("hidden");
  $("app").classList.add("hidden");
}

function route() {
  const m = location.hash.match(/^#job\/(.+)$/);
  if (m) showJob(decodeURIComponent(m[1]));
  else {
    shownJob = null;
    $("job-view").classList.add("hidden");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    login($("token").value);
  });
  $("logout").addEventListener("click", logout);
  $("back").addEventListener("click", (e) => {
    e.preventDefault();
    history.pushState(null, "", location.pathname);
    route();
  });
  $("editor-form").addEventListener("submit", saveSite);
  $("editor-cancel").addEventListener("click", () => $("editor").close());
  window.addEventListener("hashchange", route);
  // the ages tick between readings without asking the server
  setInterval(() => { if (token && status.sites.length) renderSites(); }, 5000);
  if (token) login(token);
});
