// The fence editor: draw a polygon or circle, or pick H3 cells or cell markers by clicking; see the base
// stations inside, untick some, save the fence.
(function () {
  "use strict";
  const cfg = window.SIGLOC;
  const map = L.map("map", { preferCanvas: true });
  window.siglocMap = map;  // for scripted checks (the browser test clicks at coordinates)
  if (cfg.tiles) { L.tileLayer(cfg.tiles, { maxZoom: 19 }).addTo(map); }
  const cellLayer = L.layerGroup().addTo(map);
  const fenceLayer = L.featureGroup().addTo(map);
  const markers = {};
  let drawn = null;  // the fence document of the shape being edited

  // The pick tools: "h3" (each map click toggles the H3 cell under it) or "cells" (each marker click toggles
  // that cell); the picked ids are the fence, so the picks are kept here until "Preview" posts them.
  const picker = { mode: null, h3: new Map(), cells: new Set(), layer: L.featureGroup().addTo(map) };

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ headers: { "Content-Type": "application/json" } }, options));
    const body = await response.json();
    if (!response.ok) { throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)); }
    return body;
  }

  function paint(keys, color) {
    for (const key of keys) { if (markers[key]) { markers[key].setStyle({ color: color, fillColor: color }); } }
  }

  async function loadCells() {
    const cells = await api("/api/cells");
    const bounds = [];
    for (const f of cells.features) {
      const [lon, lat] = f.geometry.coordinates;
      const m = L.circleMarker([lat, lon], { radius: 4, color: "#555", weight: 1, fillOpacity: 0.8 });
      m.bindTooltip(f.properties.key + " " + f.properties.site);
      m.on("click", () => { if (picker.mode === "cells") { togglePickedCell(f.properties.key); } });
      m.addTo(cellLayer);
      markers[f.properties.key] = m;
      bounds.push([lat, lon]);
    }
    if (bounds.length) { map.fitBounds(bounds); } else { map.setView([30.25, 120.15], 12); }
  }

  async function loadFences() {
    const list = document.getElementById("fences");
    list.innerHTML = "";
    for (const f of await api("/api/fences")) {
      const li = document.createElement("li");
      li.className = "fence";
      li.dataset.name = f.name;
      li.textContent = `${f.name} (${f.kind}, ${f.cells} cells)`;
      li.onclick = async () => {
        const doc = await api("/api/fences/" + encodeURIComponent(f.name));
        Object.values(markers).forEach(m => m.setStyle({ color: "#555", fillColor: "#555" }));
        paint(doc.compiled_cells || [], "#d62728");
        li.title = (doc.compiled_cells || []).join(" ");
      };
      list.appendChild(li);
    }
  }

  function showCandidates(rows) {
    const body = document.querySelector("#candidates tbody");
    body.innerHTML = "";
    for (const c of rows) {
      const tr = document.createElement("tr");
      tr.innerHTML = `<td><input type="checkbox" class="cell-pick" data-key="${c.key}" ${c.selected ? "checked" : ""}></td>` +
        `<td>${c.key}</td><td>${c.site}</td><td>${(100 * c.share).toFixed(0)} %</td>`;
      body.appendChild(tr);
    }
    document.getElementById("candidate-count").textContent =
      `${rows.filter(c => c.selected).length} of ${rows.length} touching cells selected`;
    document.getElementById("editor").hidden = false;
    paint(rows.filter(c => c.selected).map(c => c.key), "#1f77b4");
  }

  async function preview(doc) {
    drawn = doc;
    try { showCandidates(await api("/api/fences/preview", { method: "POST", body: JSON.stringify(doc) })); }
    catch (err) { document.getElementById("save-status").textContent = err.message; }
  }

  document.getElementById("save-fence").onclick = async () => {
    const status = document.getElementById("save-status");
    const keys = [...document.querySelectorAll(".cell-pick")].filter(b => b.checked).map(b => b.dataset.key);
    const doc = Object.assign({}, drawn, { name: document.getElementById("fence-name").value });
    try {
      const saved = await api("/api/fences", { method: "POST", body: JSON.stringify({ fence: doc, cells: keys }) });
      status.textContent = `saved ${saved.name}: ${saved.cells.length} cells`;
      status.dataset.cells = saved.cells.join(" ");
      await loadFences();
    } catch (err) { status.textContent = err.message; }
  };

  function showPickCount() {
    const n = picker.mode === "h3" ? picker.h3.size : picker.cells.size;
    document.getElementById("pick-count").textContent =
      picker.mode ? `${n} ${picker.mode === "h3" ? "H3 cells" : "cells"} picked` : "";
    document.getElementById("pick-preview").disabled = !picker.mode || n === 0;
  }

  function togglePickedCell(key) {
    if (picker.cells.has(key)) { picker.cells.delete(key); paint([key], "#555"); }
    else { picker.cells.add(key); paint([key], "#ff7f0e"); }
    showPickCount();
  }

  async function togglePickedH3(latlng) {
    const res = document.getElementById("h3-res").value;
    try {
      const hit = await api(`/api/h3?lat=${latlng.lat}&lon=${latlng.lng}&res=${res}`);
      if (picker.mode !== "h3" || document.getElementById("h3-res").value !== res) { return; }  // tool changed
      if (picker.h3.has(hit.cell)) {
        picker.layer.removeLayer(picker.h3.get(hit.cell));
        picker.h3.delete(hit.cell);
      } else {
        const hex = L.polygon(hit.boundary, { color: "#ff7f0e", weight: 2, fillOpacity: 0.2, interactive: false });
        hex.addTo(picker.layer);
        picker.h3.set(hit.cell, hex);
      }
      showPickCount();
    } catch (err) { document.getElementById("save-status").textContent = err.message; }
  }

  // Switching tools (or starting a Leaflet.draw shape) drops the picks of the previous tool.
  function setPickMode(mode) {
    picker.layer.clearLayers();
    picker.h3.clear();
    paint([...picker.cells], "#555");
    picker.cells.clear();
    picker.mode = mode;
    Object.values(markers).forEach(m => m.setRadius(mode === "cells" ? 7 : 4));  // bigger targets to click
    if (mode) { fenceLayer.clearLayers(); }
    for (const [id, tool] of [["pick-h3", "h3"], ["pick-cells", "cells"]]) {
      const button = document.getElementById(id);
      button.classList.toggle("active", mode === tool);
      button.style.background = mode === tool ? "#ffd8a8" : "";
    }
    document.getElementById("h3-res").disabled = mode === "cells";
    showPickCount();
  }

  const PickControl = L.Control.extend({
    options: { position: "topleft" },
    onAdd() {
      const box = L.DomUtil.create("div", "leaflet-bar sigloc-pick");
      box.style.cssText = "background:#fff;padding:4px;display:flex;flex-direction:column;gap:3px;font-size:12px";
      const resOptions = [6, 7, 8, 9, 10].map(r => `<option value="${r}"${r === 8 ? " selected" : ""}>${r}</option>`);
      box.innerHTML = `<button type="button" id="pick-h3">Pick H3 cells</button>` +
        `<label>H3 res <select id="h3-res">${resOptions.join("")}</select></label>` +
        `<button type="button" id="pick-cells">Pick cells</button>` +
        `<button type="button" id="pick-preview" disabled>Preview</button><span id="pick-count"></span>`;
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    },
  });

  if (cfg.canWrite) {
    map.addControl(new L.Control.Draw({
      edit: { featureGroup: fenceLayer, remove: false },
      draw: { polyline: false, marker: false, circlemarker: false, rectangle: true, polygon: true, circle: true },
    }));
    map.addControl(new PickControl());  // below the draw toolbar
    document.getElementById("pick-h3").onclick = () => setPickMode(picker.mode === "h3" ? null : "h3");
    document.getElementById("pick-cells").onclick = () => setPickMode(picker.mode === "cells" ? null : "cells");
    document.getElementById("h3-res").onchange = () => { if (picker.mode === "h3") { setPickMode("h3"); } };
    document.getElementById("pick-preview").onclick = () => {
      const name = document.getElementById("fence-name").value;
      const cells = picker.mode === "h3" ? [...picker.h3.keys()] : [...picker.cells];
      preview({ kind: picker.mode, name: name, cells: cells });
    };
    map.on("click", (e) => { if (picker.mode === "h3") { togglePickedH3(e.latlng); } });
    map.on(L.Draw.Event.DRAWSTART, () => setPickMode(null));
    map.on(L.Draw.Event.CREATED, (e) => {
      fenceLayer.clearLayers();
      fenceLayer.addLayer(e.layer);
      const name = document.getElementById("fence-name").value;
      if (e.layerType === "circle") {
        const c = e.layer.getLatLng();
        preview({ kind: "radius", name: name, lat: c.lat, lon: c.lng, radius_m: e.layer.getRadius() });
      } else {
        preview({ kind: "polygon", name: name, geometry: e.layer.toGeoJSON().geometry });
      }
    });
  }
  loadCells().then(loadFences);
})();
