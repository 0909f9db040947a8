// corridor's live page: the route from /api/corridor, then snapshots and tower panels over SSE.
"use strict";

const ACTION_COLOUR = { SLOW_DOWN: "#f08c00", STOP: "#d6336c", SPEED_UP: "#1c7ed6", KEEP: "#868e96" };
const ST_SECONDS = 150;
const dash = {           // what the page shows, also read by the browser tests
  corridor: null, snapshot: null, towers: null, selected: null, snapshots: 0, live: false, drawn: [],
};
window.dash = dash;

const $ = (id) => document.getElementById(id);
const road = $("road"), rctx = road.getContext("2d");
const st = $("spacetime"), sctx = st.getContext("2d");

function limitAt(km) {
  for (const s of dash.corridor.segments) if (km >= s.from_km && km <= s.to_km) return s.limit_mps;
  return 29;
}
function speedColour(speed, km) {
  const r = Math.max(0, Math.min(1, speed / limitAt(km)));
  return `hsl(${Math.round(120 * r)},75%,${r > 0.5 ? 40 : 48}%)`;
}
function clock(ms) {
  return ms ? new Date(ms).toISOString().substring(11, 19) : "–";
}

// ---- the road: km across, the two carriageways above and below the median -------------------
const PAD = 30, MEDIAN = 130, LANE = 14;
const xOf = (km) => PAD + (km / dash.corridor.length_km) * (road.width - 2 * PAD);
const yOf = (northbound, lane) => (northbound ? MEDIAN - 10 - lane * LANE : MEDIAN + 10 + lane * LANE);

function drawRoad() {
  const c = dash.corridor, snap = dash.snapshot;
  rctx.clearRect(0, 0, road.width, road.height);
  c.regions.forEach((r, i) => {                     // tower regions as bands, the tower in each
    rctx.fillStyle = i % 2 ? "#eef2f7" : "#f8fafc";
    rctx.fillRect(xOf(r.from_km), 20, xOf(r.to_km) - xOf(r.from_km), road.height - 60);
    const mid = xOf((r.from_km + r.to_km) / 2);
    rctx.fillStyle = "#495057";
    rctx.font = "11px system-ui";
    rctx.textAlign = "center";
    rctx.fillText(`${r.tower}`, mid, 14);
    rctx.beginPath();                                  // the tower: a mast
    rctx.moveTo(mid, 24); rctx.lineTo(mid - 4, 34); rctx.lineTo(mid + 4, 34); rctx.closePath();
    rctx.fill();
  });
  rctx.strokeStyle = "#adb5bd";                        // the carriageways and the median
  for (const nb of [true, false]) for (let lane = -0.5; lane < 3; lane += 1) {
    rctx.beginPath(); rctx.moveTo(xOf(0), yOf(nb, lane)); rctx.lineTo(xOf(c.length_km), yOf(nb, lane)); rctx.stroke();
  }
  rctx.fillStyle = "#343a40";
  rctx.font = "10px system-ui";
  c.waypoints.forEach((w, i) => {                      // towns and interchanges
    const x = xOf(w.km);
    rctx.fillRect(x - 0.5, MEDIAN - 4, 1, 8);
    if (w.interchange || i === 0 || i === c.waypoints.length - 1) {
      rctx.save(); rctx.translate(x, road.height - 36); rctx.rotate(-0.5);
      rctx.textAlign = "right"; rctx.fillText(w.name, 0, 0); rctx.restore();
    }
  });
  if (!snap) return;
  for (const h of snap.hazards) {                      // hazards: stop zone and advice zone upstream
    const sides = h.direction === "BOTH" ? [true, false] : [h.direction === "NORTHBOUND"];
    for (const nb of sides) {
      const up = nb ? -1 : 1, a = c.advice;
      const y0 = nb ? yOf(true, 2.5) : yOf(false, -0.5), hgt = 3 * LANE;
      rctx.fillStyle = "rgba(240,140,0,.12)";
      rctx.fillRect(Math.min(xOf(h.km), xOf(h.km + up * a.lookahead_km)), y0, Math.abs(xOf(h.km + up * a.lookahead_km) - xOf(h.km)), hgt);
      rctx.fillStyle = "rgba(220,40,40,.3)";
      rctx.fillRect(Math.min(xOf(h.km), xOf(h.km + up * a.stop_km)), y0, Math.abs(xOf(h.km + up * a.stop_km) - xOf(h.km)), hgt);
      rctx.fillStyle = "#d22";
      rctx.fillRect(xOf(h.km) - 1.5, y0, 3, hgt);
    }
  }
  dash.drawn = [];
  for (const [num, km, nb, speed, lane, advice] of snap.rows) {
    const x = xOf(km), y = yOf(nb === 1, Math.min(lane, 2));
    rctx.fillStyle = speedColour(speed, km);
    rctx.beginPath(); rctx.arc(x, y, 3, 0, 2 * Math.PI); rctx.fill();
    if (advice) {
      rctx.strokeStyle = ACTION_COLOUR[advice] || "#000";
      rctx.lineWidth = 2;
      rctx.beginPath(); rctx.arc(x, y, 6, 0, 2 * Math.PI); rctx.stroke();
      rctx.lineWidth = 1;
    }
    if (dash.selected === num) {
      rctx.strokeStyle = "#000";
      rctx.beginPath(); rctx.arc(x, y, 8, 0, 2 * Math.PI); rctx.stroke();
    }
    dash.drawn.push([num, x, y]);
  }
}

// ---- the space-time diagram: one column per snapshot, scrolling left -------------------------
function drawSpaceTime() {
  const snap = dash.snapshot, c = dash.corridor, cols = st.width / (ST_SECONDS * 4);
  sctx.drawImage(st, -cols, 0);
  sctx.fillStyle = "#fff";
  sctx.fillRect(st.width - cols, 0, cols, st.height);
  const half = st.height / 2 - 2;
  for (const [, km, nb, speed] of snap.rows) {
    const y = nb === 1 ? half - (km / c.length_km) * half : half + 4 + (km / c.length_km) * half;
    sctx.fillStyle = speedColour(speed, km);
    sctx.fillRect(st.width - cols, y, cols, 1.5);
  }
  sctx.fillStyle = "#adb5bd";
  sctx.fillRect(st.width - cols, half + 1, cols, 2);
}

// ---- the side panels ---------------------------------------------------------------------------
function renderFigures() {
  const s = dash.snapshot;
  $("sim-time").textContent = clock(s.sim_ms);
  $("vehicle-count").textContent = s.vehicles.toLocaleString();
  $("shown").textContent = s.stride > 1 ? `(1 in ${s.stride} shown)` : "";
  $("update-count").textContent = s.updates.toLocaleString();
  $("advisory-count").textContent = s.advisory_count.toLocaleString();
  const tt = s.corridor ? s.corridor.travel_time_min : {};
  if (tt.NORTHBOUND !== undefined || tt.SOUTHBOUND !== undefined) {  // only while the Spark job runs
    $("corridor-figures").hidden = false;
    $("travel-time").textContent = `↑ ${tt.NORTHBOUND ?? "–"} / ↓ ${tt.SOUTHBOUND ?? "–"} min`;
    const eps = s.corridor.episodes;
    $("episodes").textContent = eps.length ? `${eps.length} congested stretch${eps.length > 1 ? "es" : ""}` : "";
  }
  $("hazard-count").textContent = s.hazards.length;
  $("hazards").replaceChildren(...s.hazards.map((h) => {
    const li = document.createElement("li");
    li.dataset.hazard = h.id;
    li.textContent = `${h.type} at km ${h.km.toFixed(1)} ${h.direction.toLowerCase()}, severity ${h.severity} (${h.id})`;
    return li;
  }));
  $("timeline").replaceChildren(...s.timeline.slice().reverse().map((e) => {
    const li = document.createElement("li");
    li.textContent = `${clock(e.sim_ms)} ${e.text}`;
    return li;
  }));
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
function row(...cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

function renderTowers() {
  const t = dash.towers;
  $("etcd-state").textContent = `etcd ${t.etcd}`;
  const cards = [];
  for (const set of t.sets) {
    for (const w of set.workers) {
      const div = document.createElement("div");
      div.className = "worker";
      div.dataset.worker = w.worker;
      const h = document.createElement("h3");
      h.textContent = `${w.worker} (pid ${w.pid})`;
      const table = document.createElement("table");
      table.append(
        row(cell("regions"), cell(w.regions.join(", "))),
        row(cell("updates/s"), cell(w.page ? w.updates_per_s.toLocaleString() : "page not answering", w.page ? "" : "bad")),
        row(cell("lag"), cell(w.page ? `${(w.behind_ms / 1000).toFixed(2)} s` : "–")),
        ...(w.staleness || []).map(([label, age]) => row(cell(`age: ${label}`), cell(age))),
        row(cell("memory"), cell(w.rss_mib ? `${w.rss_mib} MiB` : "–")),
        row(cell("etcd lease"), cell(w.etcd_healthy === false ? "unhealthy" : `${w.lease}, seen ${w.seen_s_ago} s ago`,
                                     w.etcd_healthy === false ? "bad" : "ok")),
        row(cell("set"), cell(set.app)),
      );
      div.append(h, table);
      cards.push(div);
    }
    const view = document.createElement("div");
    view.className = "worker";
    const h = document.createElement("h3");
    h.textContent = `etcd global view (${set.app})`;
    const table = document.createElement("table");
    table.className = "regions";
    table.append(row(cell("region"), cell("tower"), cell("members"), cell("hazards")));
    for (const r of set.regions) table.append(row(cell(r.region), cell(r.tower), cell(r.members), cell(r.hazards.join(", "))));
    table.append(row(cell("global"), cell(""), cell(""), cell(set.global_hazards.join(", "))));
    view.append(h, table);
    cards.push(view);
  }
  $("towers").replaceChildren(...cards);
}

async function showVehicle() {
  if (dash.selected === null) return;
  const r = await fetch(`/api/vehicle?num=${dash.selected}`);
  const box = $("vehicle");
  if (!r.ok) { box.textContent = (await r.json()).error; return; }
  const v = await r.json();
  const table = document.createElement("table");
  table.append(row(cell("vehicle"), cell(v.vehicle)), row(cell("at"), cell(`km ${v.km.toFixed(2)} ${v.direction.toLowerCase()}, lane ${v.lane}`)),
               row(cell("speed"), cell(`${(v.speed * 3.6).toFixed(0)} km/h`)));
  for (const u of v.history.slice(-8).reverse())
    table.append(row(cell(clock(u.event_time)), cell(`km ${u.route_km.toFixed(2)}, ${(u.speed_mps * 3.6).toFixed(0)} km/h${u.brake ? ", braking" : ""}`)));
  for (const a of v.advisories.slice().reverse())
    table.append(row(cell(a.action, a.action), cell(`${a.speed} m/s: ${a.reason}`)));
  box.dataset.vehicle = v.vehicle;
  box.replaceChildren(table);
}

road.addEventListener("click", (ev) => {
  const rect = road.getBoundingClientRect();
  const x = (ev.clientX - rect.left) * (road.width / rect.width), y = (ev.clientY - rect.top) * (road.height / rect.height);
  let best = null, bestD = 100;
  for (const [num, dx, dy] of dash.drawn) {
    const d = (dx - x) ** 2 + (dy - y) ** 2;
    if (d < bestD) { best = num; bestD = d; }
  }
  if (best !== null) { dash.selected = best; showVehicle(); }
});
setInterval(showVehicle, 1000);

function connect() {
  const events = new EventSource("/events");
  events.addEventListener("snapshot", (e) => {
    dash.snapshot = JSON.parse(e.data);
    dash.snapshots += 1;
    drawRoad(); drawSpaceTime(); renderFigures();
  });
  events.addEventListener("towers", (e) => { dash.towers = JSON.parse(e.data); renderTowers(); });
  events.onopen = () => { dash.live = true; $("link").textContent = "live"; $("link").className = "up"; };
  events.onerror = () => { dash.live = false; $("link").textContent = "reconnecting"; $("link").className = "down"; };
}

fetch("/api/corridor").then((r) => r.json()).then((c) => {
  dash.corridor = c;
  $("route-name").textContent = `— ${c.name}, ${c.length_km.toFixed(0)} km`;
  sctx.fillStyle = "#fff"; sctx.fillRect(0, 0, st.width, st.height);
  drawRoad();
  connect();
});
