// The fence editor: draw a polygon or circle, see the base stations inside, untick some, save the fence.
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

  if (cfg.canWrite) {
    map.addControl(new L.Control.Draw({
      edit: { featureGroup: fenceLayer, remove: false },
      draw: { polyline: false, marker: false, circlemarker: false, rectangle: true, polygon: true, circle: true },
    }));
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
