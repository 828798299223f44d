/* thawdetect review page: queue, map, evidence, keyboard decisions. No external requests. */
"use strict";
(function () {
  const TOKEN = document.querySelector('meta[name="thawdetect-token"]').content;
  const STATUS_COLOUR = {
    pending: "#c8d1db", confirmed: "#2fbf71", rejected: "#e5484d", unsure: "#f5a524", part_of: "#c77dff",
  };
  const PROB_KEYS = { "1": "high", "2": "medium", "3": "low" };
  const S = {
    run: null, rows: [], cur: -1, cand: null, prob: null, editing: false, edited: null,
    target: null, layerIndex: null, busy: false, frameTimer: null,
  };
  const $ = (id) => document.getElementById(id);
  const esc = (v) => String(v == null ? "" : v).replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const fmt = (v, d = 2) => (v == null || Number.isNaN(v) ? "–" : (typeof v === "number" ? v.toFixed(d) : esc(v)));

  async function api(path, body) {
    const opt = { headers: { "X-Thawdetect-Token": TOKEN }, credentials: "same-origin" };
    if (body !== undefined) {
      opt.method = "POST";
      opt.headers["Content-Type"] = "application/json";
      opt.body = JSON.stringify(body);
    }
    const r = await fetch(path, opt);
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || `${r.status} ${r.statusText}`);
    return data;
  }

  function toast(msg, error) {
    const t = $("toast");
    t.textContent = msg; t.hidden = false; t.className = "toast" + (error ? " error" : "");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, error ? 5000 : 1800);
  }

  // -- header ---------------------------------------------------------------------------------
  function renderCounts(c) {
    const order = ["pending", "confirmed", "rejected", "unsure", "part_of"];
    $("counts").innerHTML = order.filter((k) => k in c && (k !== "part_of" || c[k] > 0)).map((k) =>
      `<span class="count" data-status="${k}"><span class="dot st-${k}"></span>${k.replace("_", " ")} <b>${c[k]}</b></span>`).join("");
    const done = c.total - (c.pending || 0);
    const pct = c.total ? (100 * done) / c.total : 0;
    $("progress-bar").style.width = pct + "%";
    $("progress-text").textContent = `${done} / ${c.total} decided`;
  }

  // -- map ------------------------------------------------------------------------------------
  const map = L.map("map", { zoomControl: true, attributionControl: true, maxZoom: 20, minZoom: 3 });
  map.attributionControl.setPrefix("Leaflet · thawdetect run layers");
  L.control.scale({ imperial: false, maxWidth: 160, position: "bottomleft" }).addTo(map);
  map.setView([0, 0], 3);
  const nbLayer = L.layerGroup().addTo(map);
  const candLayer = L.layerGroup().addTo(map);
  let baseTiles = null, dataTiles = null, candPoly = null;

  function tileLayer(layer, opts) {
    const b = layer.bounds_wgs84;
    return L.tileLayer(`/tiles/${layer.index}/{z}/{x}/{y}.png`, Object.assign({
      bounds: L.latLngBounds([b[1], b[0]], [b[3], b[2]]), maxNativeZoom: layer.maxzoom,
      minNativeZoom: layer.minzoom, maxZoom: 20, tileSize: 256, keepBuffer: 1,
    }, opts || {}));
  }

  function layersFor(cand) {
    const all = S.run ? S.run.layers : [];
    const ids = cand ? new Set(cand.layers) : null;
    return all.filter((l) => l.kind !== "hillshade" && (!ids || ids.has(l.index)));
  }

  function renderLayerList(cand) {
    const ls = layersFor(cand);
    if (S.layerIndex == null || (S.layerIndex !== -1 && !ls.some((l) => l.index === S.layerIndex))) {
      const same = ls.find((l) => S.lastLabel && l.label === S.lastLabel);
      S.layerIndex = same ? same.index : (ls.length ? ls[0].index : null);
    }
    // frames of one kind at several dates (a time-lapse) become one entry with a date slider
    const groups = [];
    for (const l of ls) {
      const key = `${l.iteration}|${l.detector}|${l.base}`;
      let g = groups.find((x) => x.key === key);
      if (!g) { g = { key, base: l.base, it: l.iteration, members: [] }; groups.push(g); }
      g.members.push(l);
    }
    const items = groups.map((g, gi) => {
      const on = g.members.findIndex((l) => l.index === S.layerIndex);
      const cur = g.members[Math.max(on, 0)];
      const name = g.members.length > 1 ? g.base : cur.label;
      let row = `<label title="${esc(cur.label)}"><input type="radio" name="layer" value="${cur.index}" data-g="${gi}" ${on >= 0 ? "checked" : ""}> ${esc(name)} <span class="it">${g.it ? "it " + g.it : ""}</span></label>`;
      if (g.members.length > 1) {
        row += `<div class="dates"><input type="range" min="0" max="${g.members.length - 1}" value="${Math.max(on, 0)}" data-g="${gi}"><span>${esc(cur.date || cur.label)}</span></div>`;
      }
      return row;
    });
    items.push(`<label><input type="radio" name="layer" value="-1" ${S.layerIndex === -1 ? "checked" : ""}> none (hillshade only)</label>`);
    $("layer-list").innerHTML = items.join("");
    $("layer-list").querySelectorAll("input[type=radio]").forEach((el) => el.addEventListener("change", () => {
      S.layerIndex = Number(el.value); applyLayers();
    }));
    $("layer-list").querySelectorAll("input[type=range]").forEach((el) => el.addEventListener("input", () => {
      const g = groups[Number(el.dataset.g)];
      const l = g.members[Number(el.value)];
      S.layerIndex = l.index;
      el.nextElementSibling.textContent = l.date || l.label;
      const radio = $("layer-list").querySelector(`input[type=radio][data-g="${el.dataset.g}"]`);
      radio.value = l.index; radio.checked = true;
      applyLayers();
    }));
    applyLayers();
  }

  function applyLayers() {
    const all = S.run ? S.run.layers : [];
    const shade = all.find((l) => l.kind === "hillshade");
    if (!baseTiles && shade) baseTiles = tileLayer(shade, { zIndex: 1 }).addTo(map);
    if (dataTiles) { map.removeLayer(dataTiles); dataTiles = null; }
    const layer = all.find((l) => l.index === S.layerIndex);
    if (layer) {
      S.lastLabel = layer.label;
      dataTiles = tileLayer(layer, { zIndex: 2, opacity: Number($("layer-opacity").value) / 100 }).addTo(map);
    }
    renderColorbar(layer);
  }

  function renderColorbar(layer) {
    const cb = $("colorbar");
    if (!layer || !layer.colorbar || !layer.colorbar.length || !layer.value_range) { cb.hidden = true; return; }
    const [lo, hi] = layer.value_range;
    const mid = (lo + hi) / 2;
    const d = Math.abs(hi - lo) >= 20 ? 0 : 1;
    const sign = layer.kind === "diverging" && /rate/i.test(layer.label)
      ? "<div class='muted'>LOS, MintPy sign: − away from / + towards the satellite; translucent near 0</div>" : "";
    cb.innerHTML = `<div class="cb-title">${esc(layer.label)} <span class="muted">(${esc(layer.units || "value")})</span></div>
      <div class="cb-ramp" style="background: linear-gradient(90deg, ${layer.colorbar.join(",")})"></div>
      <div class="cb-ticks"><span>${lo.toFixed(d)}</span><span>${mid.toFixed(d)}</span><span>${hi.toFixed(d)}</span></div>${sign}`;
    cb.hidden = false;
  }
  $("layer-opacity").addEventListener("input", () => { if (dataTiles) dataTiles.setOpacity(Number($("layer-opacity").value) / 100); });
  $("show-neighbours").addEventListener("change", () => {
    if ($("show-neighbours").checked) map.addLayer(nbLayer); else map.removeLayer(nbLayer);
  });

  function renderMap(cand) {
    stopEditing(false);
    nbLayer.clearLayers(); candLayer.clearLayers();
    S.target = null; renderTarget();
    for (const f of cand.neighbours.features) {
      const p = f.properties;
      const inv = p.kind === "inventory";
      const style = inv
        ? { color: "#ff5fd2", weight: 2, fillOpacity: 0.08 }
        : { color: STATUS_COLOUR[p.status] || "#c8d1db", weight: 1.5, fillOpacity: 0.04, dashArray: p.status === "pending" ? "2 4" : null };
      const lyr = L.geoJSON(f, { style: () => style, pmIgnore: true });
      lyr.bindTooltip(inv ? `inventory ${esc(p.id)} (${esc(p.source)}) · click to select for "part of"` : `${esc(p.id)} · ${esc(p.status)}`, { sticky: true });
      lyr.on("click", (ev) => {
        L.DomEvent.stopPropagation(ev);
        if (inv) { S.target = p.id; renderTarget(); lyr.setStyle({ color: "#ffffff", weight: 3 }); }
        else { const i = S.rows.findIndex((r) => r.id === p.id); if (i >= 0) select(i); }
      });
      lyr.addTo(nbLayer);
    }
    if (cand.reviewed_outline) {
      L.geoJSON(cand.reviewed_outline, { style: () => ({ color: "#3fd0ff", weight: 2.5, dashArray: "6 5", fill: false }), pmIgnore: true }).addTo(candLayer);
    }
    const rings = L.GeoJSON.coordsToLatLngs(
      cand.geometry.type === "Polygon" ? cand.geometry.coordinates : cand.geometry.coordinates[0], 1);
    candPoly = L.polygon(rings, { color: "#ffd23f", weight: 3, fillOpacity: 0.06 }).addTo(candLayer);
    const b = cand.bounds;
    const bounds = L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
    map.fitBounds(bounds.pad(0.8), { maxZoom: 17, animate: false });
  }

  // -- outline editing (leaflet-geoman) -------------------------------------------------------
  function startEditing() {
    if (!candPoly || S.run.read_only) return;
    if (!S.run.can_edit_outline) { toast("this thawdetect cannot store edited outlines yet", true); return; }
    S.editing = true;
    candPoly.pm.enable({ snappable: false });
    map.fitBounds(candPoly.getBounds().pad(0.3), { animate: false, maxZoom: 19 }); // vertices apart
    $("edit-banner").hidden = false; $("b-edit").classList.add("on");
  }
  function stopEditing(keep) {
    if (!S.editing) return;
    S.editing = false;
    if (candPoly && candPoly.pm) candPoly.pm.disable();
    if (keep && candPoly) { S.edited = candPoly.toGeoJSON().geometry; candPoly.setStyle({ color: "#3fd0ff", dashArray: "6 5" }); }
    $("edit-banner").hidden = true; $("b-edit").classList.toggle("on", !!S.edited);
  }
  function toggleEdit() { if (S.editing) { stopEditing(true); toast("edited outline kept: y confirms with it"); } else startEditing(); }

  // -- queue ----------------------------------------------------------------------------------
  function filters() {
    return { status: $("f-status").value, iteration: $("f-iteration").value, detector: $("f-detector").value };
  }
  async function loadQueue(keepId) {
    const f = filters();
    const q = new URLSearchParams();
    if (f.status) q.set("status", f.status);
    if (f.iteration) q.set("iteration", f.iteration);
    if (f.detector) q.set("detector", f.detector);
    const data = await api("/api/queue?" + q.toString());
    S.rows = data.rows;
    renderCounts(data.counts);
    renderQueue();
    let i = keepId ? S.rows.findIndex((r) => r.id === keepId) : -1;
    if (i < 0) i = S.rows.length ? 0 : -1;
    if (i >= 0) await select(i); else clearCandidate();
  }
  const qmeta = (r) => `${esc(r.det)}${r.n > 1 ? ` (${r.n} agree)` : ""} · ${fmt(r.area_ha, 2)} ha · ${esc(r.status.replace("_", " "))}${r.prob ? " · " + esc(r.prob) : ""}`;
  function renderQueue() {
    $("queue").innerHTML = S.rows.map((r, i) => `<li data-i="${i}" data-id="${esc(r.id)}" class="${i === S.cur ? "current" : ""}">
      <span class="dot st-${esc(r.status)}"></span><span class="qid">${esc(r.id)}</span><span class="qscore">${fmt(r.score, 2)}</span>
      <span class="qmeta">${qmeta(r)}</span></li>`).join("");
    renderSummary();
  }
  function renderSummary() {
    const pend = S.rows.filter((r) => r.status === "pending").length;
    $("queue-summary").textContent = `${S.rows.length} in view · ${pend} pending · order: detectors agreeing, then score`;
  }
  function renderRow(i) { // one row after a decision: no rebuild of a 10,000-row list
    const r = S.rows[i];
    const li = document.querySelector(`#queue li[data-i="${i}"]`);
    if (!r || !li) return renderQueue();
    li.querySelector(".dot").className = `dot st-${r.status}`;
    li.querySelector(".qmeta").innerHTML = qmeta(r);
    renderSummary();
  }
  $("queue").addEventListener("click", (ev) => { const li = ev.target.closest("li"); if (li) select(Number(li.dataset.i)); });
  ["f-status", "f-iteration", "f-detector"].forEach((id) => $(id).addEventListener("change", () => loadQueue()));

  function clearCandidate() {
    S.cur = -1; S.cand = null;
    $("cand-head").innerHTML = '<div class="empty">Nothing in this view: change the filters, or the review is done.</div>';
    ["timelapse", "series", "terrain", "det-evidence", "history"].forEach((id) => { $(id).innerHTML = ""; });
    nbLayer.clearLayers(); candLayer.clearLayers();
  }

  async function select(i) {
    if (i < 0 || i >= S.rows.length) return;
    S.cur = i; S.prob = null; S.edited = null; S.target = null;
    renderProb(); $("b-edit").classList.remove("on"); $("note").value = "";
    document.querySelectorAll("#queue li").forEach((li) => li.classList.toggle("current", Number(li.dataset.i) === i));
    const li = document.querySelector(`#queue li[data-i="${i}"]`);
    if (li) li.scrollIntoView({ block: "nearest" });
    const id = S.rows[i].id;
    const cand = await api(`/api/candidate/${encodeURIComponent(id)}`);
    if (S.rows[S.cur] && S.rows[S.cur].id !== id) return; // moved on meanwhile
    S.cand = cand;
    renderCandidate(cand);
    document.body.dataset.cand = id;
  }

  // -- evidence -------------------------------------------------------------------------------
  function renderCandidate(c) {
    const a = c.attributes;
    const st = a.status || "pending";
    $("cand-head").innerHTML = `<div class="title"><span class="cid">${esc(a.candidate_id)}</span>
      <span class="pill" style="background:${STATUS_COLOUR[st] || "#c8d1db"}">${esc(st.replace("_", " "))}${a.probability ? " · " + esc(a.probability) : ""}</span>
      <span class="muted">iteration ${esc(a.iteration)}</span></div>
      <div class="facts"><span>score <b>${fmt(a.score, 3)}</b></span><span>area <b>${fmt(a.area_ha, 2)} ha</b></span>
      <span>detectors <b>${esc(a.detectors)}</b></span><span>perimeter <b>${fmt(a.perimeter_m, 0)} m</b></span>
      <span>lat <b>${fmt(a.lat, 5)}</b></span><span>lon <b>${fmt(a.lon, 5)}</b></span></div>`;
    renderLayerList(c);
    renderMap(c);
    renderFrames(c);
    renderSeries(c.series);
    renderTerrain(c.terrain);
    renderEvidence(c.evidence);
    renderHistory(c.history);
  }

  function renderFrames(c) {
    clearInterval(S.frameTimer);
    const box = $("timelapse");
    if (!c.frames.length) { box.innerHTML = '<div class="empty">no evidence frames for this candidate</div>'; $("frame-label").textContent = ""; return; }
    const id = encodeURIComponent(c.attributes.candidate_id);
    box.innerHTML = `<div class="frame"><img id="frame-img" alt="evidence frame"></div>
      <div class="strip">${c.frames.map((f) => `<button type="button" data-i="${f.index}">${esc(f.label)}</button>`).join("")}
      <button type="button" id="frame-play">▶ play</button></div>`;
    let k = 0;
    const show = (i) => {
      k = i;
      $("frame-img").src = `/api/candidate/${id}/frame/${i}`;
      $("frame-label").textContent = `${c.frames[i].label} (frame ${i + 1}/${c.frames.length})`;
      box.querySelectorAll(".strip button[data-i]").forEach((b) => b.classList.toggle("on", Number(b.dataset.i) === i));
    };
    box.querySelectorAll(".strip button[data-i]").forEach((b) => b.addEventListener("click", () => { clearInterval(S.frameTimer); show(Number(b.dataset.i)); }));
    $("frame-play").addEventListener("click", () => {
      clearInterval(S.frameTimer);
      S.frameTimer = setInterval(() => show((k + 1) % c.frames.length), 800);
    });
    show(0);
  }

  function renderSeries(s) {
    const box = $("series");
    if (!s || !s.dates || !s.dates.length) { box.innerHTML = '<div class="empty">no time series for this candidate</div>'; return; }
    const W = 400, H = 210, L0 = 46, R0 = 8, T0 = 26, B0 = 24;
    const t = (d) => Date.parse(d);
    const xs = s.dates.map(t);
    let ys = s.values_mm.filter((v) => v != null);
    if (s.model) ys = ys.concat(s.model.fit_mm, s.model.trend_mm);
    const x0 = Math.min(...xs), x1 = Math.max(...xs);
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    const pad = (y1 - y0) * 0.08 || 1; y0 -= pad; y1 += pad;
    const X = (v) => L0 + ((v - x0) / (x1 - x0 || 1)) * (W - L0 - R0);
    const Y = (v) => T0 + (1 - (v - y0) / (y1 - y0)) * (H - T0 - B0);
    const step = niceStep((y1 - y0) / 5);
    let g = "";
    for (let v = Math.ceil(y0 / step) * step; v <= y1; v += step) {
      g += `<line class="grid" x1="${L0}" x2="${W - R0}" y1="${Y(v)}" y2="${Y(v)}"/><text x="${L0 - 4}" y="${Y(v) + 3}" text-anchor="end">${+v.toFixed(1)}</text>`;
    }
    const ya = new Date(x0).getUTCFullYear(), yb = new Date(x1).getUTCFullYear();
    for (let yr = ya; yr <= yb + 1; yr++) {
      for (const m of [0, 6]) {
        const v = Date.UTC(yr, m, 1);
        if (v < x0 || v > x1) continue;
        g += `<line class="grid" x1="${X(v)}" x2="${X(v)}" y1="${T0}" y2="${H - B0}"/><text x="${X(v)}" y="${H - B0 + 13}" text-anchor="middle">${m ? "Jul" : yr}</text>`;
      }
    }
    const pts = s.dates.map((d, i) => (s.values_mm[i] == null ? "" : `<circle class="obs" cx="${X(t(d)).toFixed(1)}" cy="${Y(s.values_mm[i]).toFixed(1)}" r="2"/>`)).join("");
    let model = "", legend = `<text class="legend-text" x="${L0}" y="12">● observations</text>`;
    if (s.model) {
      const path = (arr) => s.model.dates.map((d, i) => `${i ? "L" : "M"}${X(t(d)).toFixed(1)},${Y(arr[i]).toFixed(1)}`).join("");
      model = `<path class="trend" d="${path(s.model.trend_mm)}"/><path class="fit" d="${path(s.model.fit_mm)}"/>`;
      legend += `<text class="legend-text" x="${L0 + 95}" y="12" fill="#ffd23f">— fit: rate ${fmt(s.rate_mm_yr, 1)} mm/yr, A = ${fmt(s.amplitude_pp_mm, 1)} mm</text>`;
      legend += `<text class="legend-text" x="${L0}" y="23" fill="#ff8f6b">- - linear trend</text><text class="legend-text" x="${L0 + 95}" y="23">(A: seasonal, peak-to-peak)</text>`;
    }
    box.innerHTML = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="time series">${g}
      <line class="axis" x1="${L0}" x2="${L0}" y1="${T0}" y2="${H - B0}"/><line class="axis" x1="${L0}" x2="${W - R0}" y1="${H - B0}" y2="${H - B0}"/>
      ${model}${pts}${legend}
      <text x="11" y="${(T0 + H - B0) / 2}" transform="rotate(-90 11 ${(T0 + H - B0) / 2})" text-anchor="middle">${esc(shortLabel(s.label))}</text></svg>
      <div class="muted">${esc(s.label)} · ${s.dates[0]} – ${s.dates[s.dates.length - 1]} · ${s.dates.length} epochs · model y = a + b·t + c·cos 2πt + d·sin 2πt</div>`;
  }
  function shortLabel(l) { return (l || "displacement (mm)").split(",")[0]; }
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    const n = raw / p;
    return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * p;
  }

  const TERRAIN = [["mean_elevation_m", "elevation", "m", 0], ["mean_slope_deg", "slope", "°", 1],
    ["aspect_deg", "aspect (0 = N, clockwise)", "°", 0], ["relief_m", "relief", "m", 0],
    ["headwall_upslope", "headwall upslope", "", 0]];
  function renderTerrain(tr) {
    const rows = [];
    for (const [k, name, unit, d] of TERRAIN) {
      if (!(k in tr)) continue;
      const v = tr[k];
      rows.push(`<tr><td>${name}</td><td class="num">${typeof v === "boolean" ? (v ? "yes" : "no") : fmt(v, d) + (unit ? " " + unit : "")}</td></tr>`);
    }
    for (const k of Object.keys(tr)) {
      if (TERRAIN.some((t) => t[0] === k) || k === "error") continue;
      rows.push(`<tr><td>${esc(k.replace(/_/g, " "))}</td><td class="num">${typeof tr[k] === "boolean" ? (tr[k] ? "yes" : "no") : fmt(tr[k], 1)}</td></tr>`);
    }
    if (!("near_road" in tr) && !Object.keys(tr).some((k) => k.includes("road"))) rows.push('<tr><td>near road</td><td class="num muted">no roads layer in this run</td></tr>');
    $("terrain").innerHTML = rows.length > 1 || !tr.error ? `<table class="kv">${rows.join("")}</table>` : "";
    if (tr.error) $("terrain").innerHTML += `<div class="empty">${esc(tr.error)}</div>`;
    if (!rows.length && !tr.error) $("terrain").innerHTML = '<div class="empty">no DEM in this run</div>';
  }

  const UNITS = [[/_mm_yr$/, " (mm/yr)"], [/_pp_mm$/, " peak-to-peak (mm)"], [/_mm$/, " (mm)"], [/_m2$/, " (m²)"],
    [/_m$/, " (m)"], [/_ha$/, " (ha)"], [/_deg$/, " (°)"]];
  function unitLabel(k) {
    for (const [re, u] of UNITS) if (re.test(k)) return k.replace(re, "").replace(/_/g, " ") + u;
    return k.replace(/_/g, " ");
  }
  function renderEvidence(ev) {
    const names = Object.keys(ev || {});
    if (!names.length) { $("det-evidence").innerHTML = '<div class="empty">none</div>'; return; }
    $("det-evidence").innerHTML = names.map((n) => `<div class="det-name">${esc(n)}</div><table class="kv">${Object.entries(ev[n]).map(([k, v]) =>
      `<tr><td>${esc(unitLabel(k))}</td><td class="num">${typeof v === "number" ? fmt(v, Number.isInteger(v) || Math.abs(v) >= 100 ? 0 : 2) : esc(v)}</td></tr>`).join("")}</table>`).join("");
  }

  function renderHistory(h) {
    $("history").innerHTML = h.length ? h.slice().reverse().map((r) => `<div class="hist-row"><b>${esc(r.decision)}</b>${r.probability ? " (" + esc(r.probability) + ")" : ""}${r.part_of ? " of " + esc(r.part_of) : ""}${r.edited_outline ? " · edited outline" : ""} by ${esc(r.reviewer)}${r.note ? " – " + esc(r.note) : ""}<div class="when">${esc(r.timestamp)}</div></div>`).join("")
      : '<div class="empty">not decided yet</div>';
  }

  // -- decisions ------------------------------------------------------------------------------
  function renderProb() {
    document.querySelectorAll(".chip[data-prob]").forEach((b) => b.classList.toggle("on", b.dataset.prob === S.prob));
  }
  function renderTarget() {
    $("part-target").innerHTML = S.target ? `part of: <b>${esc(S.target)}</b> (press <kbd>p</kbd>)` : "part of: <i>click an inventory feature on the map</i>";
  }
  function flash(cls) { const b = document.querySelector(".btn." + cls); if (b) { b.classList.add("flash"); setTimeout(() => b.classList.remove("flash"), 250); } }

  async function decide(decision) {
    if (!S.cand || S.busy || !S.rows[S.cur]) return;
    if (S.run.read_only) { toast("read-only: decisions are off", true); return; }
    if (S.editing) stopEditing(true);
    // The highlighted row is what the reviewer decides, even while its evidence is loading.
    const id = S.rows[S.cur].id;
    if (S.cand.attributes.candidate_id !== id) { S.edited = null; S.target = null; }
    const body = { candidate_id: id, decision, note: $("note").value };
    if (decision === "confirmed" && S.prob) body.probability = S.prob;
    if (S.edited && (decision === "confirmed" || decision === "part_of")) body.geometry = S.edited;
    if (decision === "part_of") {
      if (!S.target) { toast("click an inventory feature on the map first, then press p", true); return; }
      body.part_of = S.target;
    }
    S.busy = true;
    flash({ confirmed: "confirm", rejected: "reject", unsure: "unsure", part_of: "partof" }[decision]);
    try {
      const r = await api("/api/decide", body);
      renderCounts(r.counts);
      const at = S.rows.findIndex((x) => x.id === id);
      if (at >= 0) { S.rows[at].status = r.statuses[id] || decision; S.rows[at].prob = body.probability || null; renderRow(at); }
      toast(`${id}: ${decision.replace("_", " ")}${body.probability ? " (" + body.probability + ")" : ""}${body.part_of ? " of " + body.part_of : ""}${body.geometry ? ", edited outline" : ""}`);
      S.busy = false;
      nextPending();
    } catch (e) {
      S.busy = false;
      toast(e.message, true);
    }
  }
  function nextPending() {
    for (let i = S.cur + 1; i < S.rows.length; i++) if (S.rows[i].status === "pending") return select(i);
    for (let i = 0; i < S.cur; i++) if (S.rows[i].status === "pending") return select(i);
    if (S.cur >= 0) select(S.cur);
    toast("no pending candidate left in this view");
  }
  async function undo() {
    if (S.run.read_only) { toast("read-only: decisions are off", true); return; }
    try {
      const r = await api("/api/undo", {});
      if (!r.undone.length) { toast("nothing to undo"); return; }
      toast(`undone: ${r.undone.join(", ")}`);
      await loadQueue(r.undone[0]);
    } catch (e) { toast(e.message, true); }
  }

  document.addEventListener("keydown", (ev) => {
    const tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") {
      if (ev.key === "Escape" || (ev.key === "Enter" && ev.target.id === "note")) ev.target.blur();
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if ($("review-view").hidden) return;
    let handled = true;
    if (k === "y") decide("confirmed");
    else if (k === "n") decide("rejected");
    else if (k === "u") decide("unsure");
    else if (k === "p") decide("part_of");
    else if (k in PROB_KEYS) { S.prob = S.prob === PROB_KEYS[k] ? null : PROB_KEYS[k]; renderProb(); }
    else if (k === "e") toggleEdit();
    else if (k === "j") select(S.cur + 1);
    else if (k === "k") select(S.cur - 1);
    else if (k === "z") undo();
    else if (k === "Enter") $("note").focus();
    else if (k === "Escape" && S.editing) stopEditing(false);
    else handled = false;
    if (handled) ev.preventDefault();
  });
  $("b-confirm").addEventListener("click", () => decide("confirmed"));
  $("b-reject").addEventListener("click", () => decide("rejected"));
  $("b-unsure").addEventListener("click", () => decide("unsure"));
  $("b-partof").addEventListener("click", () => decide("part_of"));
  $("b-edit").addEventListener("click", toggleEdit);
  $("b-undo").addEventListener("click", undo);
  document.querySelectorAll(".chip[data-prob]").forEach((b) => b.addEventListener("click", () => {
    S.prob = S.prob === b.dataset.prob ? null : b.dataset.prob; renderProb();
  }));

  // -- overview -------------------------------------------------------------------------------
  let ovMap = null;
  async function showOverview() {
    $("review-view").hidden = true; $("overview-view").hidden = false;
    $("tab-review").classList.remove("active"); $("tab-overview").classList.add("active");
    const run = await api("/api/run");
    S.run = run; renderCounts(run.counts);
    const its = run.iterations;
    const cols = [["iteration", "it"], ["detectors", "detectors"], ["training_positives", "positives"], ["training_negatives", "negatives"],
      ["candidates_proposed", "proposed"], ["candidates_reviewed", "reviewed"], ["newly_confirmed", "new"], ["rejected", "rejected"], ["inventory_size", "inventory"]];
    $("ov-iterations").innerHTML = its.length ? `<table><tr>${cols.map((c) => `<th class="${c[0] === "detectors" ? "" : "num"}">${c[1]}</th>`).join("")}</tr>${its.map((r) => `<tr>${cols.map((c) => `<td class="${c[0] === "detectors" ? "" : "num"}">${esc(r[c[0]])}</td>`).join("")}</tr>`).join("")}</table>`
      : '<div class="empty">no iteration finished yet (the first awaits review)</div>';
    $("ov-review").innerHTML = `<table><tr><th class="num">it</th><th class="num">candidates</th><th class="num">pending</th><th class="num">confirmed</th><th class="num">rejected</th><th class="num">unsure</th><th class="num">part of</th><th class="num">confirmed / decided</th></tr>
      ${run.per_iteration.map((r) => `<tr><td class="num">${r.iteration}</td><td class="num">${r.candidates}</td><td class="num">${r.pending}</td><td class="num">${r.confirmed}</td><td class="num">${r.rejected}</td><td class="num">${r.unsure}</td><td class="num">${r.part_of}</td><td class="num">${r.confirmed_fraction == null ? "–" : (100 * r.confirmed_fraction).toFixed(0) + " %"}</td></tr>`).join("")}</table>`;
    const acc = run.accuracy;
    if (!acc) $("ov-accuracy").innerHTML = '<div class="empty">no validation points configured for this run</div>';
    else if (acc.error || acc.empty) $("ov-accuracy").innerHTML = `<div class="empty">${esc(acc.error || acc.empty)}</div>`;
    else {
      const pct = (v) => (v == null ? "–" : (100 * v).toFixed(1) + " %");
      const ci = (c) => (c ? ` <span class="muted">[${(100 * c[0]).toFixed(0)}–${(100 * c[1]).toFixed(0)}]</span>` : "");
      const row = (name, r) => `<tr><td>${esc(name)}</td><td class="num">${r.tp}</td><td class="num">${r.fp}</td><td class="num">${r.fn}</td><td class="num">${pct(r.tpr)}${ci(r.tpr_ci95)}</td><td class="num">${pct(r.fnr)}</td></tr>`;
      $("ov-accuracy").innerHTML = `<div class="muted">against ${esc(acc.validation.join(", "))}; TPR with 95 % interval</div><table><tr><th>scope</th><th class="num">TP</th><th class="num">FP</th><th class="num">FN</th><th class="num">TPR</th><th class="num">FNR</th></tr>
        ${row("confirmed so far", acc.overall)}${row("all proposed (before review)", acc.proposed)}${Object.entries(acc.per_iteration).map(([k, r]) => row("iterations ≤ " + k, r)).join("")}</table>`;
    }
    $("ov-messages").innerHTML = (run.messages.length ? run.messages.map((m) => `<div>${esc(m)}</div>`).join("") : '<div class="empty">none</div>')
      + `<div class="muted" style="margin-top:6px">run status: ${esc(run.status)}${run.stop_reason ? " · " + esc(run.stop_reason) : ""} · CRS ${esc(run.working_crs)}</div>`;
    const pts = await api("/api/points");
    if (!ovMap) {
      ovMap = L.map("ov-map", { preferCanvas: true, attributionControl: false, maxZoom: 20 });
      L.control.scale({ imperial: false }).addTo(ovMap);
      const shade = run.layers.find((l) => l.kind === "hillshade");
      if (shade) tileLayer(shade).addTo(ovMap);
      ovMap.ptLayer = L.layerGroup().addTo(ovMap);
      ovMap.setView([0, 0], 3);
    }
    ovMap.invalidateSize();
    ovMap.ptLayer.clearLayers();
    const ll = [];
    const radius = pts.id.length > 2000 ? 3 : pts.id.length > 300 ? 5 : 7;
    for (let i = 0; i < pts.id.length; i++) {
      const m = L.circleMarker([pts.lat[i], pts.lon[i]], { radius, color: "#0b0e11", weight: radius > 3 ? 2 : 1, fillColor: STATUS_COLOUR[pts.status[i]] || "#c8d1db", fillOpacity: 0.9 });
      m.bindTooltip(`${pts.id[i]} · ${pts.status[i]} · it ${pts.it[i]}`);
      const cid = pts.id[i];
      m.on("click", () => openCandidate(cid));
      m.addTo(ovMap.ptLayer); ll.push([pts.lat[i], pts.lon[i]]);
    }
    if (ll.length) ovMap.fitBounds(L.latLngBounds(ll).pad(0.1), { maxZoom: 15 });
    else if (run.layers.length) { const b = run.layers[0].bounds_wgs84; ovMap.fitBounds([[b[1], b[0]], [b[3], b[2]]]); }
  }
  function showReview() {
    $("overview-view").hidden = true; $("review-view").hidden = false;
    $("tab-overview").classList.remove("active"); $("tab-review").classList.add("active");
    setTimeout(() => map.invalidateSize(), 0);
  }
  async function openCandidate(cid) {
    $("f-status").value = "all"; $("f-iteration").value = ""; $("f-detector").value = "";
    showReview(); await loadQueue(cid);
  }
  $("tab-overview").addEventListener("click", showOverview);
  $("tab-review").addEventListener("click", showReview);

  // -- start ----------------------------------------------------------------------------------
  async function start() {
    try {
      const run = await api("/api/run");
      S.run = run;
      $("run-title").innerHTML = `<b>${esc(run.name)}</b> · ${esc(run.region || "")}${run.synthetic ? '<span class="synthetic">synthetic sample</span>' : ""}`;
      $("who").innerHTML = `reviewer <b>${esc(run.reviewer)}</b>${run.read_only ? '<span class="ro">read-only</span>' : ""}`;
      $("f-iteration").innerHTML = '<option value="">all</option>' + run.iteration_numbers.map((k) => `<option value="${k}">${k}</option>`).join("");
      $("f-detector").innerHTML = '<option value="">all</option>' + run.detectors.map((d) => `<option value="${esc(d)}">${esc(d)}</option>`).join("");
      if (!run.counts.pending) $("f-status").value = "all";
      if (run.read_only) document.querySelectorAll(".decide button").forEach((b) => { if (b.id !== "b-edit") b.disabled = true; });
      const first = run.layers.find((l) => l.kind !== "hillshade") || run.layers[0];
      if (first) { const b = first.bounds_wgs84; map.fitBounds([[b[1], b[0]], [b[3], b[2]]]); }
      await loadQueue();
      document.body.dataset.ready = "1";
    } catch (e) {
      toast(e.message, true);
      document.body.dataset.ready = "error";
    }
  }
  start();
})();
