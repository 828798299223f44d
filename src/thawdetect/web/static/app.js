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
    target: null, layerIndex: null, overlayIndex: null, busy: false, frameTimer: null,
    askProb: false, confirmJoin: null, version: null,
  };
  // every outline is drawn over a dark halo, so it stays visible on every colour ramp
  const HALO = { color: "#0b0e11", opacity: 0.85, fill: false, interactive: false, pmIgnore: true };
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
    if (!r.ok) {
      const err = new Error(data.error || `${r.status} ${r.statusText}`);
      err.confirm = data.confirm || null;
      throw err;
    }
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
    S.counts = c;
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
  const pixLayer = L.layerGroup().addTo(map);
  map.createPane("compare"); // the overlay layer: its own pane, so the swipe can clip it
  map.getPane("compare").style.zIndex = 260;
  let baseTiles = null, dataTiles = null, overTiles = null, candPoly = null;

  function tileLayer(layer, opts) {
    const b = layer.bounds_wgs84;
    const tl = L.tileLayer(`/tiles/${layer.index}/{z}/{x}/{y}.png`, Object.assign({
      bounds: L.latLngBounds([b[1], b[0]], [b[3], b[2]]), maxNativeZoom: layer.maxzoom,
      minNativeZoom: layer.minzoom, maxZoom: 20, tileSize: 256, keepBuffer: 1,
    }, opts || {}));
    tl.tdLayer = layer;
    return tl;
  }

  // The tile URLs the map will ask for when it shows ``bounds`` as select does (fitBounds with
  // pad 0.8, max zoom 17), for each tile layer on the map now: Leaflet's own arithmetic (the view
  // centred on the bounds, the map's size, native zooms clamped), limited to the layer's bounds.
  function viewTileUrls(bounds) {
    const view = bounds.pad(0.8);
    const z = Math.min(map.getBoundsZoom(view, false), 17);
    const centre = view.getCenter();
    const half = map.getSize().divideBy(2);
    const urls = [];
    for (const tl of [baseTiles, dataTiles, overTiles]) {
      if (!tl || !map.hasLayer(tl) || !tl.tdLayer) continue;
      const l = tl.tdLayer;
      const tz = Math.max(l.minzoom ?? 0, Math.min(z, l.maxzoom ?? z));
      const scale = Math.pow(2, tz - z);
      const c = map.project(centre, tz);
      const lo = c.subtract(half.multiplyBy(scale)).divideBy(256).floor();
      const hi = c.add(half.multiplyBy(scale)).divideBy(256).floor();
      const b = l.bounds_wgs84;
      const bl = map.project(L.latLng(b[1], b[0]), tz).divideBy(256).floor();
      const tr = map.project(L.latLng(b[3], b[2]), tz).divideBy(256).floor();
      for (let x = Math.max(lo.x, bl.x); x <= Math.min(hi.x, tr.x); x++) {
        for (let y = Math.max(lo.y, tr.y); y <= Math.min(hi.y, bl.y); y++) {
          urls.push(`/tiles/${l.index}/${tz}/${x}/${y}.png`);
        }
      }
    }
    return urls.slice(0, 48);
  }
  function loadImages(urls) {
    return Promise.all(urls.map((u) => new Promise((done) => {
      const img = new Image();
      img.onload = img.onerror = done;
      img.src = u;
    })));
  }

  function mergeLayers(defs) { // layers a resumed run added since the page loaded
    if (!S.run || !defs) return;
    for (const d of defs) if (!S.run.layers.some((l) => l.index === d.index)) S.run.layers.push(d);
  }
  function layersFor(cand) {
    const all = S.run ? S.run.layers : [];
    const ids = cand ? new Set(cand.layers) : null;
    return all.filter((l) => l.kind !== "hillshade" && (!ids || ids.has(l.index)));
  }

  const shortDate = (l) => (l.date ? l.date.replace(/\s*\(since [^)]*\)$/, "") : l.label);
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
        row += `<div class="dates"><input type="range" min="0" max="${g.members.length - 1}" value="${Math.max(on, 0)}" data-g="${gi}"><span title="${esc(cur.date || cur.label)}">${esc(shortDate(cur))}</span></div>`;
      }
      return row;
    });
    items.push(`<label><input type="radio" name="layer" value="-1" ${S.layerIndex === -1 ? "checked" : ""}> none (hillshade only)</label>`);
    $("layer-list").innerHTML = items.join("");
    $("layer-list").querySelectorAll("input[type=radio]").forEach((el) => el.addEventListener("change", () => {
      S.layerIndex = Number(el.value); applyLayers();
      el.blur(); // the keys keep working after a click on a layer (no focus trap)
    }));
    // overlay: any value layer (rate, amplitude, displacement) over the base, with opacity and swipe
    const vals = ls.filter((l) => l.kind !== "rgb");
    if (S.overlayIndex != null && !vals.some((l) => l.index === S.overlayIndex)) {
      const same = vals.find((l) => S.lastOverlay && l.label === S.lastOverlay);
      S.overlayIndex = same ? same.index : null;
    }
    $("overlay-layer").innerHTML = '<option value="">nothing</option>' + vals.map((l) =>
      `<option value="${l.index}" ${l.index === S.overlayIndex ? "selected" : ""}>${esc(l.label)}${l.iteration ? " · it " + l.iteration : ""}</option>`).join("");
    $("layer-list").querySelectorAll("input[type=range]").forEach((el) => el.addEventListener("input", () => {
      const g = groups[Number(el.dataset.g)];
      const l = g.members[Number(el.value)];
      S.layerIndex = l.index;
      el.nextElementSibling.textContent = shortDate(l);
      const radio = $("layer-list").querySelector(`input[type=radio][data-g="${el.dataset.g}"]`);
      radio.value = l.index; radio.checked = true;
      applyLayers();
    }));
    $("layer-list").querySelectorAll("input[type=range]").forEach((el) => el.addEventListener("change", () => el.blur()));
    applyLayers();
  }

  function applyLayers() {
    const all = S.run ? S.run.layers : [];
    const shade = all.find((l) => l.kind === "hillshade");
    if (!baseTiles && shade) baseTiles = tileLayer(shade, { zIndex: 1 }).addTo(map);
    if (dataTiles) { map.removeLayer(dataTiles); dataTiles = null; }
    if (overTiles) { map.removeLayer(overTiles); overTiles = null; }
    const layer = all.find((l) => l.index === S.layerIndex);
    const over = all.find((l) => l.index === S.overlayIndex);
    const opacity = Number($("layer-opacity").value) / 100;
    if (layer) {
      S.lastLabel = layer.label;
      dataTiles = tileLayer(layer, { zIndex: 2, opacity: over ? 1 : opacity }).addTo(map);
    }
    if (over) {
      S.lastOverlay = over.label;
      overTiles = tileLayer(over, { pane: "compare", opacity }).addTo(map);
    }
    $("swipe-row").hidden = !over;
    document.body.dataset.overlay = over ? String(over.index) : "";
    applySwipe();
    renderColorbar(over || layer);
  }
  function applySwipe() { // clip the overlay pane to the left of the swipe line
    const pane = map.getPane("compare");
    const pct = Number($("swipe").value);
    const line = $("swipe-line");
    if (!overTiles || pct >= 100) { pane.style.clip = ""; line.hidden = true; return; }
    const size = map.getSize();
    const nw = map.containerPointToLayerPoint([0, 0]);
    const se = map.containerPointToLayerPoint(size);
    const x = nw.x + (size.x * pct) / 100;
    pane.style.clip = `rect(${nw.y}px, ${x}px, ${se.y}px, ${nw.x}px)`;
    line.hidden = false; line.style.left = `${(size.x * pct) / 100}px`;
  }
  map.on("move zoom resize", applySwipe);
  $("swipe").addEventListener("input", applySwipe);
  $("overlay-layer").addEventListener("change", () => {
    const v = $("overlay-layer").value;
    S.overlayIndex = v === "" ? null : Number(v);
    if (S.overlayIndex == null) S.lastOverlay = null;
    applyLayers();
    $("overlay-layer").blur();
  });

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
  $("layer-opacity").addEventListener("input", () => {
    const o = Number($("layer-opacity").value) / 100;
    if (overTiles) overTiles.setOpacity(o); else if (dataTiles) dataTiles.setOpacity(o);
  });
  ["layer-opacity", "swipe", "show-neighbours"].forEach((id) => $(id).addEventListener("change", () => $(id).blur()));
  map.on("mousemove", (ev) => {
    const { lat, lng } = ev.latlng;
    $("cursor").textContent = `${Math.abs(lat).toFixed(5)}° ${lat >= 0 ? "N" : "S"}  ${Math.abs(lng).toFixed(5)}° ${lng >= 0 ? "E" : "W"}`;
  });
  map.on("mouseout", () => { $("cursor").textContent = ""; });
  $("show-neighbours").addEventListener("change", () => {
    if ($("show-neighbours").checked) map.addLayer(nbLayer); else map.removeLayer(nbLayer);
  });

  function renderMap(cand) {
    stopEditing(false);
    nbLayer.clearLayers(); candLayer.clearLayers(); pixLayer.clearLayers();
    S.target = null; S.targets = []; S.confirmJoin = null;
    S.invLayers = {};
    for (const f of cand.neighbours.features) {
      const p = f.properties;
      const inv = p.kind === "inventory";
      const style = inv
        ? { color: "#ff5fd2", weight: 2.5, fillOpacity: 0.1 }
        : { color: STATUS_COLOUR[p.status] || "#c8d1db", weight: 1.5, fillOpacity: 0.04, dashArray: p.status === "pending" ? "2 4" : null };
      L.geoJSON(f, { style: () => Object.assign({}, HALO, { weight: style.weight + 3 }), interactive: false, pmIgnore: true }).addTo(nbLayer);
      const lyr = L.geoJSON(f, { style: () => style, pmIgnore: true });
      lyr.bindTooltip(inv ? `inventory ${esc(p.id)} (${esc(p.source)}), ${fmt(p.distance_m, 0)} m away · click to select for "part of"` : `${esc(p.id)} · ${esc(p.status)}`, { sticky: true });
      lyr.on("click", (ev) => {
        L.DomEvent.stopPropagation(ev);
        if (inv) pickTarget(p.id);
        else { const i = S.rows.findIndex((r) => r.id === p.id); if (i >= 0) select(i); }
      });
      lyr.addTo(nbLayer);
      if (inv) { S.targets.push({ id: p.id, distance_m: p.distance_m, multipart: p.multipart, feature: f }); S.invLayers[p.id] = lyr; }
    }
    S.targets.sort((a, b) => a.distance_m - b.distance_m);
    renderTarget();
    if (cand.reviewed_outline) {
      L.geoJSON(cand.reviewed_outline, { style: () => Object.assign({}, HALO, { weight: 6 }), interactive: false, pmIgnore: true }).addTo(candLayer);
      L.geoJSON(cand.reviewed_outline, { style: () => ({ color: "#3fd0ff", weight: 2.5, dashArray: "6 5", fill: false }), pmIgnore: true }).addTo(candLayer);
    }
    const rings = L.GeoJSON.coordsToLatLngs(
      cand.geometry.type === "Polygon" ? cand.geometry.coordinates : cand.geometry.coordinates[0], 1);
    L.polygon(rings, Object.assign({}, HALO, { weight: 7 })).addTo(candLayer);
    candPoly = L.polygon(rings, { color: "#ffd23f", weight: 3, fillOpacity: 0.06 }).addTo(candLayer);
    const b = cand.bounds;
    const bounds = L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
    map.fitBounds(bounds.pad(0.8), { maxZoom: 17, animate: false });
  }

  // a click anywhere inside an inventory feature selects it; elsewhere it reads that pixel
  function inRing(ring, x, y) {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }
  function inGeometry(g, x, y) {
    const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
    return polys.some((rings) => inRing(rings[0], x, y) && !rings.slice(1).some((h) => inRing(h, x, y)));
  }
  map.on("click", (ev) => {
    if (S.editing || !S.cand) return;
    const x = ev.latlng.lng, y = ev.latlng.lat;
    const hit = (S.targets || []).find((t) => inGeometry(t.feature.geometry, x, y));
    if (hit) { pickTarget(hit.id); return; }
    readPixel(ev.latlng);
  });

  async function readPixel(ll) {
    pixLayer.clearLayers();
    L.circleMarker(ll, { radius: 6, color: "#0b0e11", weight: 4, fill: false, interactive: false }).addTo(pixLayer);
    L.circleMarker(ll, { radius: 6, color: "#ffffff", weight: 2, fill: false, interactive: false }).addTo(pixLayer);
    $("pixel-where").textContent = `(${ll.lat.toFixed(5)}, ${ll.lng.toFixed(5)})`;
    $("pixel").innerHTML = '<div class="empty">reading…</div>';
    const it = S.cand ? S.cand.attributes.iteration : 0;
    try {
      const r = await api(`/api/pixel?lon=${ll.lng}&lat=${ll.lat}&iteration=${it}`);
      const rows = r.values.map((v) => `<tr><td>${esc(v.label)}</td><td class="num">${v.value == null ? "no data" : fmt(v.value, Math.abs(v.value) >= 100 ? 0 : 1)} ${esc(v.units || "")}</td></tr>`).join("");
      $("pixel").innerHTML = (rows ? `<table class="kv">${rows}</table>` : '<div class="empty">no layer covers this point</div>')
        + r.series.map((_, i) => `<div id="pixel-series-${i}" class="series"></div>`).join("");
      r.series.forEach((sr, i) => renderSeries(sr, `pixel-series-${i}`));
      $("pixel-card").scrollIntoView({ block: "nearest" });
      document.body.dataset.pixel = String(r.series.length);
    } catch (e) {
      $("pixel").innerHTML = `<div class="empty">${esc(e.message)}</div>`;
    }
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
      <span class="dot st-${esc(r.status)}"></span><span class="qid">${esc(r.id)}</span><span class="qscore" title="review priority: the chance of a confirmation learned from this run's earlier decisions, else the detectors' confidence (0-1); score ${fmt(r.score, 2)}">${fmt(r.pri, 2)}</span>
      <span class="qmeta">${qmeta(r)}</span></li>`).join("");
    renderSummary();
  }
  function renderSummary() {
    const pend = S.rows.filter((r) => r.status === "pending").length;
    $("queue-summary").textContent = `${S.rows.length} in view · ${pend} pending · order: detectors agreeing, then priority (chance of a confirmation)`;
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
    S.cur = -1; S.cand = null; $("ba").hidden = true;
    const c = S.counts || {};
    $("cand-head").innerHTML = c.total && !c.pending
      ? `<div class="empty"><b>Nothing left to review</b>: all ${c.total} candidates are decided. Next: ${esc(RESUME_HINT)}.</div>`
      : '<div class="empty">Nothing in this view: change the filters (status "all" shows decided candidates).</div>';
    ["timelapse", "series", "terrain", "det-evidence", "history"].forEach((id) => { $(id).innerHTML = ""; });
    nbLayer.clearLayers(); candLayer.clearLayers();
  }

  async function select(i) {
    if (i < 0 || i >= S.rows.length) return;
    S.cur = i; S.prob = null; S.edited = null; S.target = null; S.confirmJoin = null;
    closeProbPrompt();
    renderProb(); $("b-edit").classList.remove("on"); $("note").value = "";
    document.querySelectorAll("#queue li").forEach((li) => li.classList.toggle("current", Number(li.dataset.i) === i));
    const li = document.querySelector(`#queue li[data-i="${i}"]`);
    if (li) li.scrollIntoView({ block: "nearest" });
    const id = S.rows[i].id;
    const cand = await api(`/api/candidate/${encodeURIComponent(id)}`);
    if (S.rows[S.cur] && S.rows[S.cur].id !== id) return; // moved on meanwhile
    S.cand = cand;
    mergeLayers(cand.layer_defs);
    renderCandidate(cand);
    document.body.dataset.cand = id;
    prefetchNext(i);
  }

  // While the reviewer looks at this candidate, the next pending ones are asked for in turn: the
  // server draws their evidence if the run left it to be drawn lazily, and their first frame and
  // the map tiles of their view land in the browser's cache (frames are cacheable for 10
  // minutes, tiles for an hour). Their data is fetched
  // again when shown: it holds the neighbours' decisions, which the next key press changes.
  const PREFETCH_AHEAD = 2;
  const prefetched = new Set();
  async function prefetchNext(from) {
    let n = 0;
    for (let i = from + 1; i < S.rows.length && n < PREFETCH_AHEAD; i++) {
      const id = S.rows[i].id;
      if (S.rows[i].status !== "pending") continue;
      n += 1;
      if (prefetched.has(id)) continue;
      prefetched.add(id);
      try {
        const c = await api(`/api/candidate/${encodeURIComponent(id)}`);
        const urls = c.frames && c.frames.length ? [`/api/candidate/${encodeURIComponent(id)}/frame/0`] : [];
        // and the map tiles of its view (cacheable for an hour): shown from the cache on `j`
        if (c.bounds) {
          const b = c.bounds;
          urls.push(...viewTileUrls(L.latLngBounds([b[1], b[0]], [b[3], b[2]])));
        }
        await loadImages(urls);
      } catch (e) { prefetched.delete(id); return; }
      if (S.cur !== from) return; // the reviewer moved on: the next select prefetches
    }
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
      <button type="button" id="frame-play">▶ play</button>${beforeAfter(c.frames) ? '<button type="button" id="frame-ba">before | after (b)</button>' : ""}</div>`;
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
    if ($("frame-ba")) $("frame-ba").addEventListener("click", () => toggleBeforeAfter(true));
    show(0);
    if (!$("ba").hidden) toggleBeforeAfter(true); // kept open while moving between candidates
  }

  // The first and last dated frames of one kind (the optical dates of Xia et al.'s time-lapse, or
  // the InSAR displacement dates): the kind with the most dates, its earliest and latest.
  function beforeAfter(frames) {
    const groups = {};
    for (const f of frames || []) {
      const m = f.label.match(/(\d{4}-\d{2}-\d{2})/);
      if (!m || f.label.includes("(animated)")) continue;
      const kind = f.label.replace(/\(since [^)]*\)/, "").replace(m[1], "").replace(/\s+/g, " ").trim();
      (groups[kind] = groups[kind] || []).push({ ...f, date: m[1] });
    }
    let best = null;
    for (const [kind, g] of Object.entries(groups)) if (g.length >= 2 && (!best || g.length > best.g.length)) best = { kind, g };
    if (!best) return null;
    best.g.sort((a, b) => a.date.localeCompare(b.date));
    return { kind: best.kind, before: best.g[0], after: best.g[best.g.length - 1] };
  }
  function toggleBeforeAfter(open) {
    const box = $("ba");
    if (open === undefined) open = box.hidden;
    if (!open) { box.hidden = true; delete document.body.dataset.ba; return; }
    const c = S.cand, ba = c && beforeAfter(c.frames);
    if (!ba) { box.hidden = true; delete document.body.dataset.ba; toast("no dated frames to compare for this candidate"); return; }
    const id = encodeURIComponent(c.attributes.candidate_id);
    const fig = (f, what) => `<figure><img src="/api/candidate/${id}/frame/${f.index}" alt="${what} ${esc(f.date)}"><figcaption><b>${what}</b> · ${esc(f.label)}</figcaption></figure>`;
    box.innerHTML = `<div class="ba-head"><b>${esc(c.attributes.candidate_id)}</b> · ${esc(ba.kind || "images")} ${esc(ba.before.date)} → ${esc(ba.after.date)} <span class="muted">(b or Esc closes; j/k and y/n/u work here)</span></div>
      <div class="ba-pair">${fig(ba.before, "before")}${fig(ba.after, "after")}</div>`;
    box.hidden = false;
    document.body.dataset.ba = "1";
  }

  function renderSeries(s, boxId) {
    const box = $(boxId || "series");
    if (!s || !s.dates || !s.dates.length) { box.innerHTML = '<div class="empty">no time series for this candidate (click a pixel on the map for its own)</div>'; return; }
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
      <div class="muted">${s.source ? esc(s.source) + " · " : ""}${esc(s.label)} · ${s.dates[0]} – ${s.dates[s.dates.length - 1]} · ${s.dates.length} epochs · model y = a + b·t + c·cos 2πt + d·sin 2πt</div>`;
  }
  function shortLabel(l) { return (l || "displacement (mm)").split(",")[0]; }
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    const n = raw / p;
    return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * p;
  }

  const TERRAIN = [["mean_elevation_m", "elevation", "m", 0], ["mean_slope_deg", "slope", "°", 1],
    ["aspect_deg", "aspect (0 = N, clockwise)", "°", 0], ["relief_m", "relief", "m", 0],
    ["headwall_upslope", "headwall upslope", "", 0], ["road_distance_m", "distance to road", "m", 0],
    ["near_road", "near road", "", 0]];
  function renderTerrain(tr) {
    const rows = [];
    for (const [k, name, unit, d] of TERRAIN) {
      if (!(k in tr)) continue;
      const v = tr[k];
      const label = k === "near_road" && tr.near_road_m != null ? `${name} (≤ ${fmt(tr.near_road_m, 0)} m)` : name;
      rows.push(`<tr><td>${label}</td><td class="num">${typeof v === "boolean" ? (v ? "yes" : "no") : fmt(v, d) + (unit ? " " + unit : "")}</td></tr>`);
    }
    for (const k of Object.keys(tr)) {
      if (TERRAIN.some((t) => t[0] === k) || k === "error" || k === "near_road_m") continue;
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
    const t = (S.targets || []).find((x) => x.id === S.target);
    for (const [id, lyr] of Object.entries(S.invLayers || {})) {
      lyr.setStyle(id === S.target ? { color: "#ffffff", weight: 4 } : { color: "#ff5fd2", weight: 2.5 });
    }
    let html;
    if (!S.target) {
      html = S.targets && S.targets.length
        ? `part of: <i>press <kbd>p</kbd> for the nearest inventory feature (${S.targets.length} within reach), or click one</i>`
        : "part of: <i>no inventory feature near this candidate</i>";
    } else {
      const far = t && (t.distance_m > 300 || t.multipart);
      const why = t ? `${fmt(t.distance_m, 0)} m away${t.multipart ? ", would become multi-part" : ""}` : "";
      const next = S.targets.length > 1 ? " · <kbd>Tab</kbd> next" : "";
      html = `part of: <b>${esc(S.target)}</b> <span class="${far ? "warn" : "muted"}">${why}</span> · <kbd>p</kbd> records${next} · <kbd>Esc</kbd> clears`;
      if (S.confirmJoin === S.target) html = `<span class="warn confirm-join">${esc(S.confirmMsg || "")}</span> · <kbd>p</kbd> again to record it anyway, <kbd>Esc</kbd> to cancel`;
    }
    $("part-target").innerHTML = html;
    $("part-target").classList.toggle("active", !!S.target);
  }
  function pickTarget(id) { S.target = id; S.confirmJoin = null; renderTarget(); }
  function cycleTarget(step) {
    const ts = S.targets || [];
    if (!ts.length) { toast("no inventory feature near this candidate to be part of", true); return; }
    const at = ts.findIndex((t) => t.id === S.target);
    pickTarget(ts[(at + step + ts.length) % ts.length].id);
  }
  function partOfKey() { // p: pick the nearest feature, then p records (far/multi-part: p once more)
    if (!S.target) { cycleTarget(1); return; }
    decide("part_of");
  }
  function askProbability() {
    S.askProb = true; $("prob-prompt").hidden = false;
  }
  function closeProbPrompt() { S.askProb = false; $("prob-prompt").hidden = true; }
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
    if (decision === "confirmed" && !S.prob) { askProbability(); return; }
    if (decision === "part_of") {
      if (!S.target) { toast("press p for the nearest inventory feature, or click one on the map", true); return; }
      body.part_of = S.target;
      if (S.confirmJoin === S.target) body.confirm_join = true;
    }
    closeProbPrompt();
    S.busy = true;
    flash({ confirmed: "confirm", rejected: "reject", unsure: "unsure", part_of: "partof" }[decision]);
    try {
      const r = await api("/api/decide", body);
      renderCounts(r.counts);
      const at = S.rows.findIndex((x) => x.id === id);
      if (at >= 0) { S.rows[at].status = r.statuses[id] || decision; S.rows[at].prob = body.probability || null; renderRow(at); }
      const what = decision === "part_of" ? `part of ${body.part_of}` : decision;
      toast(`${id}: ${what}${body.probability ? " (" + body.probability + ")" : ""}${body.geometry ? ", edited outline" : ""}`);
      S.busy = false;
      nextPending();
    } catch (e) {
      S.busy = false;
      if (e.confirm && decision === "part_of") { // far, or a multi-part feature: one more p
        S.confirmJoin = body.part_of; S.confirmMsg = e.message; renderTarget(); return;
      }
      toast(e.message, true);
    }
  }
  function nextPending() {
    for (let i = S.cur + 1; i < S.rows.length; i++) if (S.rows[i].status === "pending") return select(i);
    for (let i = 0; i < S.cur; i++) if (S.rows[i].status === "pending") return select(i);
    if (S.cur >= 0) select(S.cur);
    reviewDone();
  }
  const RESUME_HINT = "run the same 'thawdetect run' command again to resume: the next iteration's candidates appear here by themselves";
  function reviewDone() {
    const c = S.counts || {};
    if (c.pending) { toast("no pending candidate left in this view (other filters have some)"); return; }
    $("done-banner").innerHTML = `<b>Review of this iteration done</b>: ${c.total - (c.pending || 0)} of ${c.total} decided. Next: ${esc(RESUME_HINT)}.`;
    $("done-banner").hidden = false;
    toast("all candidates decided: resume the run for the next iteration");
  }
  async function undo() {
    if (S.run.read_only) { toast("read-only: decisions are off", true); return; }
    try {
      const r = await api("/api/undo", {});
      if (!r.undone.length) { toast("nothing to undo"); return; }
      toast(`undone: ${r.undone.join(", ")}`);
      renderCounts(r.counts);
      // the view keeps its filter and its decided rows: only the undone rows change
      let at = -1;
      for (const id of r.undone) {
        const i = S.rows.findIndex((x) => x.id === id);
        if (i < 0) continue;
        S.rows[i].status = (r.statuses && r.statuses[id]) || "pending";
        S.rows[i].prob = null;
        renderRow(i);
        if (at < 0) at = i;
      }
      if (at >= 0) await select(at); else await loadQueue(r.undone[0]);
    } catch (e) { toast(e.message, true); }
  }

  const TEXT_TYPES = new Set(["text", "search", "number", "email", "password", "url"]);
  document.addEventListener("keydown", (ev) => {
    const el = ev.target;
    const tag = (el.tagName || "").toLowerCase();
    // only text fields (and drop-downs, which type-ahead) keep the keys; a radio button, check
    // box or slider the reviewer clicked does not trap them
    if (tag === "textarea" || tag === "select" || (tag === "input" && TEXT_TYPES.has(el.type))) {
      if (ev.key === "Escape" || (ev.key === "Enter" && el.id === "note")) el.blur();
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if ($("review-view").hidden) return;
    if (tag === "input" && el.type === "range" && k.startsWith("Arrow")) return;
    if (tag === "input" || tag === "button") el.blur();
    let handled = true;
    if (S.askProb && k in PROB_KEYS) { S.prob = PROB_KEYS[k]; renderProb(); decide("confirmed"); }
    else if (S.askProb && k === "Escape") closeProbPrompt();
    else if (k === "y") decide("confirmed");
    else if (k === "n") decide("rejected");
    else if (k === "u") decide("unsure");
    else if (k === "p") partOfKey();
    else if (k === "Tab" && S.target && !ev.shiftKey) cycleTarget(1);
    else if (k === "Tab" && S.target && ev.shiftKey) cycleTarget(-1);
    else if (k in PROB_KEYS) { S.prob = S.prob === PROB_KEYS[k] ? null : PROB_KEYS[k]; renderProb(); }
    else if (k === "e") toggleEdit();
    else if (k === "b") toggleBeforeAfter();
    else if (k === "Escape" && !$("ba").hidden) toggleBeforeAfter(false);
    else if (k === "j") select(S.cur + 1);
    else if (k === "k") select(S.cur - 1);
    else if (k === "z") undo();
    else if (k === "Enter") $("note").focus();
    else if (k === "Escape" && S.editing) stopEditing(false);
    else if (k === "Escape" && S.target) { S.target = null; S.confirmJoin = null; renderTarget(); }
    else handled = false;
    if (handled) ev.preventDefault();
  });
  $("b-confirm").addEventListener("click", () => decide("confirmed"));
  $("b-reject").addEventListener("click", () => decide("rejected"));
  $("b-unsure").addEventListener("click", () => decide("unsure"));
  $("b-partof").addEventListener("click", partOfKey);
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
      const row = (name, r) => `<tr><td>${esc(name)}</td><td class="num">${r.tp}</td><td class="num">${r.fp}</td><td class="num">${r.fn}</td><td class="num">${r.n}</td><td class="num">${pct(r.tpr)}${ci(r.tpr_ci95)}</td><td class="num">${pct(r.fnr)}</td></tr>`;
      const lab = acc.label_column ? `; points labelled not-landslide (column '${esc(acc.label_column)}') count as FP when detected, never as misses` : "";
      $("ov-accuracy").innerHTML = `<div class="muted">against ${esc(acc.validation.join(", "))} (N = TP + FN landslide points${lab}); TPR with 95 % interval; the same figures as <code>thawdetect accuracy --run</code></div><table><tr><th>scope</th><th class="num">TP</th><th class="num">FP</th><th class="num">FN</th><th class="num">N</th><th class="num">TPR</th><th class="num">FNR</th></tr>
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

  // -- following the run: a resumed run's iteration appears without a reload -------------------
  async function poll() {
    if (document.hidden || S.busy) return;
    let v;
    try { v = await api("/api/version"); } catch (e) { return; }
    const prev = S.version;
    S.version = v;
    if (!prev) return;
    const grew = v.counts.total !== prev.counts.total || v.layers !== prev.layers
      || v.iteration_numbers.join() !== prev.iteration_numbers.join();
    if (!grew) return;
    const run = await api("/api/run");
    S.run = run;
    fillFilters(run);
    $("done-banner").hidden = true;
    const added = v.counts.total - prev.counts.total;
    if (added > 0) toast(`the run moved on: ${added} new candidates (iteration ${Math.max(...v.iteration_numbers)})`);
    await loadQueue(S.rows[S.cur] ? S.rows[S.cur].id : undefined);
  }
  function fillFilters(run) {
    const it = $("f-iteration").value, det = $("f-detector").value;
    $("f-iteration").innerHTML = '<option value="">all</option>' + run.iteration_numbers.map((k) => `<option value="${k}">${k}</option>`).join("");
    $("f-detector").innerHTML = '<option value="">all</option>' + run.detectors.map((d) => `<option value="${esc(d)}">${esc(d)}</option>`).join("");
    $("f-iteration").value = it; $("f-detector").value = det;
  }

  // -- start ----------------------------------------------------------------------------------
  async function start() {
    try {
      const run = await api("/api/run");
      S.run = run;
      $("run-title").innerHTML = `<b>${esc(run.name)}</b> · ${esc(run.region || "")}${run.synthetic ? '<span class="synthetic">synthetic sample</span>' : ""}`;
      $("who").innerHTML = `reviewer <b>${esc(run.reviewer)}</b>${run.read_only ? '<span class="ro">read-only</span>' : ""}`;
      fillFilters(run);
      if (!run.counts.pending) $("f-status").value = "all";
      if (run.read_only) document.querySelectorAll(".decide button").forEach((b) => { if (b.id !== "b-edit") b.disabled = true; });
      const first = run.layers.find((l) => l.kind !== "hillshade") || run.layers[0];
      if (first) { const b = first.bounds_wgs84; map.fitBounds([[b[1], b[0]], [b[3], b[2]]]); }
      await loadQueue();
      if (!run.counts.pending && run.counts.total) reviewDone();
      S.version = await api("/api/version");
      setInterval(poll, 3000);
      document.body.dataset.ready = "1";
    } catch (e) {
      toast(e.message, true);
      document.body.dataset.ready = "error";
    }
  }
  start();
})();
