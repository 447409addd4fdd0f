// The evb-nms console: every datum comes from the REST API with the operator's token, and is
// shown as text (textContent), never as markup: VM names, MACs and reasons come from stations
// and tenants. No framework, no build: this file is served as it is.
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "evb-nms-token";
const EVENTS_SHOWN = 50;
const REFUSED_SHOWN = 20;
const VM_EVENTS_SHOWN = 20;
// One page of the VMs held and one of those registered (the first in VSI ID order): the
// controller builds a page, not all of its VMs, each second, and a browser redraws a few
// hundred rows with ease. Beyond it, a MAC or VSI ID in the search box finds the VM itself.
const VM_ROWS_SHOWN = 500;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

let selected = null; // the VSI ID of the VM whose detail is open
let polling = false;
let busy = false;

// ---- DOM helpers: text only -------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString([], { hour12: false }) : "";
}

// Replaced only when what it shows changed: a row or button the user is about to click, or
// text being selected, survives the polls that bring nothing new.
const serializer = new XMLSerializer();
function show(container, nodes) {
  const wanted = nodes.map((n) => serializer.serializeToString(n)).join("");
  if (container.dataset.shown === wanted) return;
  container.dataset.shown = wanted;
  container.replaceChildren(...nodes);
}

function fillBody(table, rows, emptyText) {
  const body = document.getElementById(table).tBodies[0];
  const columns = document.getElementById(table).tHead.rows[0].cells.length;
  show(body, rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "empty" }, emptyText))]);
}

// ---- the API ----------------------------------------------------------------------------
class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(path, options) {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, { ...options, headers, cache: "no-store" });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiFailure(response.status, (body && body.error) || response.statusText);
  return { body, response };
}

async function api(path, options) {
  return (await call(path, options)).body;
}

// One page of a list: its items, and whether the API's Link header names a next page.
async function page(path) {
  const { body, response } = await call(path);
  return { items: body, more: /rel="next"/.test(response.headers.get("Link") || "") };
}

// null when the API says 403 (a tenant token asking for the fabric) or 404.
async function optional(path) {
  try {
    return await api(path);
  } catch (err) {
    if (err instanceof ApiFailure && (err.status === 403 || err.status === 404)) return null;
    throw err;
  }
}

// ---- VMs --------------------------------------------------------------------------------
function vlans(vsi) {
  const vids = new Set();
  for (const a of vsi.attachments) for (const e of a.entries || []) vids.add(e.vid);
  return [...vids].join(", ");
}

function macs(vsi) {
  const all = new Set();
  for (const a of vsi.attachments) for (const e of a.entries || []) all.add(e.mac);
  return [...all].join(" ");
}

function places(vsi) {
  return vsi.attachments.map((a) => `${a.switch}/${a.port} (${a.state})`).join(", ");
}

function first(vsi, field) {
  return vsi.attachments.length ? vsi.attachments[0][field] : "";
}

// The VMs the bridge holds, then those the VM manager registered that no station associated:
// a VM that never asked is the first answer to "why can't it talk".
// `found`: the VM the search box's MAC or VSI ID names, from the API (null: none, or no such
// search); `more`: the controller holds VMs beyond the pages shown.
function renderVms(associations, registered, found, more) {
  const wanted = searchText();
  if (found && !associations.some((vsi) => vsi.vsi_id === found.vsi_id)) associations = [found, ...associations];
  const names = new Map(registered.map((vm) => [vm.vsi_id, vm]));
  const held = new Set(associations.map((vsi) => vsi.vsi_id));
  const matches = (...items) => !wanted || JSON.stringify(items).toLowerCase().includes(wanted);
  const row = (vsi, name, cells) =>
    el(
      "tr",
      { "data-vsi": vsi, class: vsi === selected ? "selected" : "", onclick: () => select(vsi) },
      el("td", { class: "mono" }, vsi),
      el("td", {}, name),
      cells,
    );
  const rows = associations
    .filter((vsi) => matches(vsi, names.get(vsi.vsi_id)))
    .map((vsi) =>
      row(vsi.vsi_id, (names.get(vsi.vsi_id) || {}).name || "", [
        el("td", {}, first(vsi, "tenant")),
        el("td", {}, first(vsi, "profile")),
        el("td", { class: "state-" + vsi.state }, vsi.state + (vsi.migrating ? " (migrating)" : "")),
        el("td", {}, vlans(vsi)),
        el("td", { class: "mono" }, macs(vsi)),
        el("td", {}, places(vsi)),
      ]),
    );
  for (const vm of registered) {
    if (held.has(vm.vsi_id) || !matches(vm)) continue;
    rows.push(
      row(vm.vsi_id, vm.name || "", [
        el("td", {}, vm.tenant),
        el("td", {}, `type ${vm.type_id} v${vm.type_version}`),
        el("td", { class: "refused" }, "registered, not associated"),
        el("td", {}, ""),
        el("td", { class: "mono" }, vm.macs.join(" ")),
        el("td", {}, ""),
      ]),
    );
  }
  const shown = rows.slice(0, VM_ROWS_SHOWN);
  if (more || rows.length > VM_ROWS_SHOWN) {
    shown.push(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "more VMs than shown: search for a MAC or VSI ID to find any of them")));
  }
  fillBody("vms", shown, wanted ? "no VM matches" : "no VM is associated or registered");
}

function searchText() {
  return document.getElementById("filter").value.trim().toLowerCase();
}

// The VM held with the MAC or VSI ID typed in the search box, wherever it is in the list.
async function search() {
  const wanted = searchText();
  const by = UUID_RE.test(wanted) ? "vsi_id" : MAC_RE.test(wanted) ? "mac" : null;
  if (!by) return null;
  const where = await optional(`/v1/lookup?${by}=${encodeURIComponent(wanted)}`);
  return where && where.current.length ? optional(`/v1/associations/${encodeURIComponent(where.vsi_id)}`) : null;
}

function renderRefused(events) {
  const rows = events
    .slice()
    .reverse()
    .map((e) =>
      el(
        "tr",
        { "data-vsi": e.detail.vsi || "", onclick: () => e.detail.vsi && select(e.detail.vsi) },
        el("td", {}, when(e.ts)),
        el("td", { class: "mono" }, e.detail.vsi || ""),
        el("td", { class: "mono" }, (e.detail.macs || []).join(" ")),
        el("td", {}, [e.switch, e.port].filter(Boolean).join("/")),
        el("td", { class: "refused" }, "refused: " + (e.detail.error || "")),
        el("td", {}, e.detail.reason || ""),
      ),
    );
  fillBody("refused", rows, "no VM refused lately");
}

// ---- alarms and events ------------------------------------------------------------------
function renderAlarms(alarms) {
  const rows = alarms
    .slice()
    .sort((a, b) => b.raised - a.raised)
    .map((a) =>
      el(
        "tr",
        { "data-alarm": a.id },
        el("td", {}, when(a.raised)),
        el("td", { class: a.severity }, a.severity + (a.maintenance ? " (maintenance)" : "")),
        el("td", { class: "mono" }, a.id),
        el("td", {}, a.reason),
        el("td", { class: "mono" }, a.affected_vms.map((vm) => vm.vsi_id).join(" ")),
      ),
    );
  fillBody("alarms", rows, "no active alarm");
}

function summary(detail) {
  const parts = [];
  for (const key of ["vsi", "alarm", "severity", "state", "tenant", "error", "reason", "macs", "vids"]) {
    if (detail[key] !== undefined && detail[key] !== null) parts.push(`${key}=${[].concat(detail[key]).join(",")}`);
  }
  return parts.join(" ");
}

function eventRows(events) {
  return events
    .slice()
    .reverse()
    .map((e) =>
      el(
        "tr",
        {},
        el("td", {}, when(e.ts)),
        el("td", { class: e.kind.endsWith("refused") ? "refused" : "" }, e.kind),
        el("td", {}, [e.switch, e.port].filter(Boolean).join("/")),
        el("td", { class: "mono" }, summary(e.detail)),
      ),
    );
}

// ---- fabric -----------------------------------------------------------------------------
function renderFabric(switches, links, servers) {
  const box = document.getElementById("fabric");
  if (switches === null) {
    show(box, [el("p", { class: "admin-only" }, "admin only: the fabric is shared by all tenants")]);
    fillBody("servers", [], "admin only");
    return;
  }
  const hasServers = (s) => s.ports.some((p) => p.role === "server");
  const aggs = switches.filter((s) => !hasServers(s));
  const edges = switches.filter(hasServers);
  const ports = edges.flatMap((s) => s.ports.filter((p) => p.role === "server").map((p) => ({ sw: s, port: p })));
  const slot = 130;
  const width = Math.max(ports.length, edges.length, aggs.length, 1) * slot;
  const center = (i, n) => ((i + 0.5) * width) / n;
  const pos = new Map();
  aggs.forEach((s, i) => pos.set(s.name, [center(i, aggs.length), 30]));
  edges.forEach((s, i) => pos.set(s.name, [center(i, edges.length), 130]));
  const drawing = svg("svg", { width, height: 270, viewBox: `0 0 ${width} 270`, role: "img" });
  const portUp = (sw, name) => {
    const s = switches.find((x) => x.name === sw);
    const p = s && s.ports.find((x) => x.name === name);
    return Boolean(p && p.up);
  };
  for (const link of links) {
    const [sa, pa] = link.a.split("/");
    const [sb, pb] = link.b.split("/");
    if (!pos.has(sa) || !pos.has(sb)) continue;
    const up = portUp(sa, pa) && portUp(sb, pb);
    const [x1, y1] = pos.get(sa);
    const [x2, y2] = pos.get(sb);
    drawing.append(svg("line", { x1, y1, x2, y2, class: up ? "" : "down" }, svg("title", {}, `${link.a} - ${link.b}`)));
  }
  const byPort = new Map((servers || []).map((s) => [`${s.switch}/${s.port}`, s]));
  ports.forEach(({ sw, port }, i) => {
    const [x1, y1] = pos.get(sw.name);
    const x = center(i, ports.length);
    drawing.append(svg("line", { x1, y1, x2: x, y2: 230, class: port.up ? "" : "down" }));
    const server = byPort.get(`${sw.name}/${port.name}`);
    const vms = server ? server.vms.length : 0;
    const classes = ["node", port.up ? "" : "down", server && server.maintenance ? "maintenance" : ""];
    drawing.append(node(x, 230, classes.join(" "), port.name, `${vms} VM${vms === 1 ? "" : "s"}`));
  });
  for (const s of switches) {
    const [x, y] = pos.get(s.name);
    drawing.append(node(x, y, "node" + (s.state === "ready" ? "" : " down"), s.name, s.state));
  }
  show(box, [drawing]);
  renderServers(servers || []);
}

function node(x, y, classes, label, sub) {
  return svg(
    "g",
    { class: classes, transform: `translate(${x - 55},${y - 18})` },
    svg("rect", { width: 110, height: 36, rx: 5 }),
    svg("text", { x: 55, y: 15, "text-anchor": "middle" }, label),
    svg("text", { x: 55, y: 29, "text-anchor": "middle" }, sub),
  );
}

function renderServers(servers) {
  const rows = servers.map((s) => {
    const path = `/v1/servers/${encodeURIComponent(s.switch)}/${encodeURIComponent(s.port)}/maintenance`;
    const button = s.maintenance
      ? el("button", { type: "button", onclick: () => act(path, { method: "DELETE" }) }, "Resume")
      : el("button", { type: "button", onclick: () => maintain(path) }, "Maintenance");
    return el(
      "tr",
      { "data-server": `${s.switch}/${s.port}` },
      el("td", {}, `${s.switch}/${s.port}`),
      el("td", { class: s.up ? "" : "refused" }, s.up ? "up" : "down"),
      el("td", { class: "mono" }, s.station || "none"),
      el("td", { class: "mono" }, s.vms.join(" ")),
      el("td", {}, s.maintenance ? `since ${when(s.maintenance.since)}: ${s.maintenance.reason}` + (s.maintenance.drained ? " (drained)" : "") : ""),
      el("td", {}, button),
    );
  });
  fillBody("servers", rows, "no server port");
}

function maintain(path) {
  const reason = window.prompt("Why is this server going into maintenance?");
  if (reason) act(path, { method: "PUT", body: JSON.stringify({ reason }) });
}

async function act(path, options) {
  try {
    await api(path, options);
    refresh();
  } catch (err) {
    showStatus(`${err.message}`, true);
  }
}

// ---- one VM -----------------------------------------------------------------------------
function select(vsi) {
  selected = vsi;
  document.getElementById("vm-detail").hidden = false;
  document.getElementById("detail-vsi").textContent = vsi;
  refresh();
}

async function renderDetail(alarms) {
  if (!selected) return;
  const vsi = selected;
  const [held, lookup, events, stats] = await Promise.all([
    optional(`/v1/associations/${encodeURIComponent(vsi)}`),
    optional(`/v1/lookup?vsi_id=${encodeURIComponent(vsi)}`),
    api(`/v1/events?vsi=${encodeURIComponent(vsi)}&latest=1&limit=${VM_EVENTS_SHOWN}`),
    optional(`/v1/vms/${encodeURIComponent(vsi)}/stats`),
  ]);
  if (vsi !== selected) return;
  const hit = alarms.filter((a) => a.affected_vms.some((vm) => vm.vsi_id === vsi));
  const attachments = held
    ? table(
        ["where", "state", "tenant", "profile", "type", "VLAN-MAC"],
        held.attachments.map((a) => [
          `${a.switch}/${a.port}`,
          a.state,
          a.tenant,
          a.profile,
          `${a.type_id} v${a.type_version}`,
          (a.entries || []).map((e) => `${e.vid}-${e.mac}`).join(" "),
        ]),
      )
    : el("p", { class: "refused" }, "not held by the bridge: no flow forwards it");
  const vm = lookup && lookup.vm;
  const registration = vm
    ? el("p", {}, `registered as "${vm.name || ""}" by tenant ${vm.tenant}: type ${vm.type_id} v${vm.type_version}, MACs ${vm.macs.join(" ")}` + (vm.group ? `, group ${vm.group}` : ""))
    : el("p", { class: "empty" }, "not registered by the VM manager");
  const previous = lookup && lookup.previous && lookup.previous.length
    ? el("p", {}, "was at: " + lookup.previous.map((p) => `${p.switch}/${p.port}`).join(", "))
    : null;
  show(document.getElementById("detail-body"), [
    el(
      "div",
      { class: "detail-grid" },
      el("div", {}, el("h3", {}, "Where it is"), attachments, previous, registration,
        el("h3", {}, "Alarms on it"), hit.length ? table(["alarm", "reason"], hit.map((a) => [a.id, a.reason])) : el("p", { class: "empty" }, "none")),
      el("div", { id: "detail-counters" }, el("h3", {}, "Counters (flows, ACL drops)"), counters(stats)),
    ),
    el("h3", {}, "Last events"),
    events.length ? el("table", { id: "detail-events" }, el("tbody", {}, eventRows(events))) : el("p", { class: "empty" }, "no event names this VM"),
  ]);
}

function table(headings, rows) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))),
  );
}

// GET /v1/vms/{vsi_id}/stats: per attachment, what its switch's last poll counted.
function counters(stats) {
  if (stats === null) return el("p", { class: "empty" }, "no counters");
  const count = (n) => (n === null || n === undefined ? "not polled yet" : String(n));
  return table(
    ["where", "packets in", "bytes in", "packets out", "bytes out", "ACL drops", "meter drops", "polled"],
    stats.attachments.map((a) => [
      `${a.switch}/${a.port}`,
      count(a.packets_in),
      count(a.bytes_in),
      count(a.packets_out),
      count(a.bytes_out),
      el("span", { class: a.acl_drops ? "refused" : "" }, count(a.acl_drops)),
      el("span", { class: a.meter_drops ? "refused" : "" }, count(a.meter_drops)),
      when(a.polled_at),
    ]),
  );
}

// ---- the loop ---------------------------------------------------------------------------
function showStatus(text, error) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = error ? "error" : "";
}

async function refresh() {
  if (busy || document.getElementById("console").hidden) return;
  busy = true;
  try {
    const [associations, registered, found, refused, alarms, events, switches, links, servers] = await Promise.all([
      page(`/v1/associations?limit=${VM_ROWS_SHOWN}`),
      page(`/v1/vms?limit=${VM_ROWS_SHOWN}`),
      search(),
      api(`/v1/events?kind=vsi.refused&latest=1&limit=${REFUSED_SHOWN}`),
      api("/v1/alarms"),
      api(`/v1/events?latest=1&limit=${EVENTS_SHOWN}`),
      optional("/v1/switches"),
      optional("/v1/links"),
      optional("/v1/servers"),
    ]);
    document.getElementById("who").textContent = switches === null ? "tenant token" : "admin";
    renderAlarms(alarms);
    renderVms(associations.items, registered.items, found, associations.more || registered.more);
    renderRefused(refused);
    fillBody("events", eventRows(events), "no event yet");
    renderFabric(switches, links || [], servers);
    await renderDetail(alarms);
    showStatus("updated " + when(Date.now() / 1000), false);
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 401) {
      logout("token refused: " + err.message);
    } else {
      showStatus("the controller does not answer: " + err.message, true);
    }
  } finally {
    busy = false;
  }
}

function start() {
  document.getElementById("login").hidden = true;
  document.getElementById("console").hidden = false;
  document.getElementById("logout").hidden = false;
  if (!polling) {
    polling = true;
    setInterval(refresh, POLL_MS);
  }
  refresh();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(TOKEN_KEY + "-given");
  document.getElementById("console").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("login").hidden = false;
  showStatus(message || "", Boolean(message));
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    sessionStorage.setItem(TOKEN_KEY + "-given", "1");
    start();
  });
  document.getElementById("logout").addEventListener("click", () => logout(""));
  document.getElementById("filter").addEventListener("input", refresh);
  document.getElementById("detail-close").addEventListener("click", () => {
    selected = null;
    document.getElementById("vm-detail").hidden = true;
  });
  if (sessionStorage.getItem(TOKEN_KEY + "-given")) start();
  else logout("");
});
