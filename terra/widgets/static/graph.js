// Terra graph widget front end: one plain ES module (anywidget contract, no build step).
//
// The kernel computes every layout (Graphviz); this module only draws the laid-out view
// as SVG, pans and zooms it, and asks the kernel for changes with custom messages
// ({type: "toggle"|"unfold"|"search"|"refresh"}). See terra/widgets/graph_widget.py.
// Any failure while drawing ends in a visible error box, never in an uncaught exception.

const SVG_NS = "http://www.w3.org/2000/svg";
const HEAT_STOPS = [[255, 255, 204], [254, 217, 118], [253, 141, 60], [227, 26, 28], [128, 0, 38]];
const NO_TIME_FILL = "#f4f6f8";
const DARK_HEAT = 0.6; // from this heat on, labels are drawn white for contrast
const KIND_STROKE = { op: "#4a5568", group: "#2b6cb0", fold: "#6b46c1", feed: "#2f855a" };

/** Fill colour for a heat in [0, 1]; the same scale as terra/widgets/svg.py. */
// Per-node times are means over iterations: three significant digits are all they carry.
function formatMicros(us) {
  if (us === null || us === undefined) return "not measured";
  return `${Number(us).toPrecision(3)} µs`;
}

function heatColor(heat) {
  if (heat === null || heat === undefined) return NO_TIME_FILL;
  const t = Math.min(Math.max(Number(heat), 0), 1) * (HEAT_STOPS.length - 1);
  const i = Math.min(Math.floor(t), HEAT_STOPS.length - 2);
  const f = t - i;
  const hex = (k) => Math.round(HEAT_STOPS[i][k] + (HEAT_STOPS[i + 1][k] - HEAT_STOPS[i][k]) * f)
    .toString(16).padStart(2, "0");
  return "#" + hex(0) + hex(1) + hex(2);
}

function svgEl(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

function htmlEl(tag, className, parent, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  if (parent) parent.appendChild(el);
  return el;
}

/** SVG path data for Graphviz spline points (first point, then three per Bézier). */
function pathData(points) {
  if (!Array.isArray(points) || points.length === 0) return "";
  const fmt = (p) => `${Number(p[0]).toFixed(1)},${Number(p[1]).toFixed(1)}`;
  let d = "M" + fmt(points[0]);
  const rest = points.slice(1);
  if (rest.length % 3 === 0) {
    for (let i = 0; i < rest.length; i += 3) d += `C${fmt(rest[i])} ${fmt(rest[i + 1])} ${fmt(rest[i + 2])}`;
  } else {
    for (const p of rest) d += "L" + fmt(p);
  }
  return d;
}

/** Pan and zoom of one <g> inside an <svg>, by wheel and drag; smooth via rAF. */
class PanZoom {
  constructor(svg, layer) {
    this.svg = svg;
    this.layer = layer;
    this.k = 1;
    this.x = 0;
    this.y = 0;
    this.pending = false;
    this.drag = null;
    this.onWheel = (ev) => {
      ev.preventDefault();
      const r = svg.getBoundingClientRect();
      const factor = Math.exp(-ev.deltaY * 0.0015);
      this.zoomAt(ev.clientX - r.left, ev.clientY - r.top, factor);
    };
    this.onDown = (ev) => {
      if (ev.button !== 0) return;
      this.drag = { x: ev.clientX, y: ev.clientY, ox: this.x, oy: this.y, moved: false };
    };
    this.onMove = (ev) => {
      if (!this.drag) return;
      const dx = ev.clientX - this.drag.x;
      const dy = ev.clientY - this.drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) this.drag.moved = true;
      this.x = this.drag.ox + dx;
      this.y = this.drag.oy + dy;
      this.schedule();
    };
    this.onUp = () => {
      this.lastDragMoved = this.drag ? this.drag.moved : false;
      this.drag = null;
    };
    svg.addEventListener("wheel", this.onWheel, { passive: false });
    svg.addEventListener("pointerdown", this.onDown);
    window.addEventListener("pointermove", this.onMove);
    window.addEventListener("pointerup", this.onUp);
  }

  zoomAt(px, py, factor) {
    const k = Math.min(Math.max(this.k * factor, 0.05), 8);
    this.x = px - ((px - this.x) * k) / this.k;
    this.y = py - ((py - this.y) * k) / this.k;
    this.k = k;
    this.schedule();
  }

  fit(width, height) {
    const r = this.svg.getBoundingClientRect();
    const w = r.width || 800;
    const h = r.height || 480;
    this.k = Math.min(w / (width + 20), h / (height + 20), 1.5);
    this.x = (w - width * this.k) / 2;
    this.y = Math.max(10, (h - height * this.k) / 2);
    this.schedule();
  }

  center(cx, cy, minScale) {
    const r = this.svg.getBoundingClientRect();
    this.k = Math.max(this.k, minScale);
    this.x = (r.width || 800) / 2 - cx * this.k;
    this.y = (r.height || 480) / 2 - cy * this.k;
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.layer.setAttribute("transform", `translate(${this.x},${this.y}) scale(${this.k})`);
    });
  }

  destroy() {
    this.svg.removeEventListener("wheel", this.onWheel);
    this.svg.removeEventListener("pointerdown", this.onDown);
    window.removeEventListener("pointermove", this.onMove);
    window.removeEventListener("pointerup", this.onUp);
  }
}

function showError(box, message) {
  box.replaceChildren();
  const err = htmlEl("div", "terra-error", box);
  htmlEl("b", "", err, "Terra graph: ");
  htmlEl("span", "terra-error-text", err, String(message));
}

function formatShape(out) {
  if (!out || typeof out !== "object") return String(out);
  const shape = Array.isArray(out.shape) ? `[${out.shape.join(", ")}]` : "?";
  return `${shape} ${out.dtype || ""} ${out.device || ""}`.trim();
}

/** Fill the details panel for a view node. */
function showDetails(panel, node) {
  panel.replaceChildren();
  panel.style.display = "block";
  const close = htmlEl("button", "terra-close", panel, "×");
  close.title = "close";
  close.addEventListener("click", () => { panel.style.display = "none"; });
  const rows = [];
  const d = node.detail;
  if (d) {
    htmlEl("div", "terra-details-title", panel, d.op || node.label);
    rows.push(["op", d.op], ["module", d.namespace || "(top level)"],
      ["source", d.source || "unknown"],
      ["outputs", (d.outputs || []).map(formatShape).join("; ") || "none"],
      ["inputs", (d.inputs || []).join("; ") || "none"],
      ["time", formatMicros(d.time_us)],
      ["seen", d.count !== null && d.count !== undefined ? `${d.count} iterations` : "?"],
      ["fetch", d.fetch ? "yes: Python waits for this value" : "no"],
      ["node id", d.id]);
  } else {
    htmlEl("div", "terra-details-title", panel, node.label);
    rows.push(["kind", node.kind], ["module", node.path || ""], ["ops", node.size],
      ["time", formatMicros(node.time_us)]);
    if (node.members) rows.push(["folded", node.members.join(", ")]);
  }
  const table = htmlEl("table", "terra-details-table", panel);
  for (const [k, v] of rows) {
    const tr = htmlEl("tr", "", table);
    htmlEl("th", "", tr, k);
    htmlEl("td", `terra-detail-${k.replace(/\s+/g, "-")}`, tr, String(v));
  }
}

function drawLegend(legend, view) {
  legend.replaceChildren();
  const item = (cls, text) => {
    const span = htmlEl("span", "terra-legend-item", legend);
    htmlEl("span", `terra-swatch ${cls}`, span);
    htmlEl("span", "", span, text);
  };
  item("sw-fetch", "fetch");
  item("sw-branch", "branch (bold: last taken)");
  item("sw-feed", "feed");
  item("sw-fold", "×N fold");
  const range = view.time_range_us;
  if (Array.isArray(range)) {
    const span = htmlEl("span", "terra-legend-item", legend);
    htmlEl("span", "", span, `time ${Number(range[0]).toFixed(1)} µs `);
    const bar = htmlEl("span", "terra-heatbar", span);
    const stops = [];
    for (let i = 0; i <= 8; i++) stops.push(heatColor(i / 8));
    bar.style.background = `linear-gradient(to right, ${stops.join(",")})`;
    htmlEl("span", "", span, ` ${Number(range[1]).toFixed(1)} µs`);
  } else {
    htmlEl("span", "terra-legend-item", legend, "no per-node times yet");
  }
}

/** Draw the laid-out view into `layer`; returns a map from view id to node. */
function drawGraph(layer, view, handlers) {
  layer.replaceChildren();
  const defs = svgEl("defs", {}, layer);
  const marker = svgEl("marker", {
    id: handlers.markerId, viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse",
  }, defs);
  svgEl("path", { d: "M0,0 L10,5 L0,10 z", fill: "#718096" }, marker);
  const byId = new Map();
  for (const c of view.clusters || []) {
    const g = svgEl("g", { class: "terra-cluster", "data-id": c.id, "data-path": c.path }, layer);
    svgEl("rect", { x: c.x, y: c.y, width: c.w, height: c.h, rx: 6 }, g);
    const label = svgEl("text", { x: c.x + 6, y: c.y + 12, class: "terra-cluster-label" }, g);
    label.textContent = `▾ ${c.label}`;
    label.addEventListener("click", (ev) => { ev.stopPropagation(); handlers.toggle(c.path); });
  }
  for (const e of view.edges || []) {
    const d = pathData(e.points);
    if (!d) continue;
    const cls = e.kind === "path" ? (e.last ? "terra-edge terra-path terra-path-last" : "terra-edge terra-path")
      : "terra-edge";
    svgEl("path", { d, class: cls, "marker-end": `url(#${handlers.markerId})` }, layer);
    if (e.kind === "path" && e.label && e.points.length) {
      const mid = e.points[Math.floor(e.points.length / 2)];
      const t = svgEl("text", { x: mid[0] + 4, y: mid[1], class: "terra-path-label" }, layer);
      t.textContent = e.label + (e.last ? " (last)" : "");
    }
  }
  for (const n of view.nodes || []) {
    byId.set(n.id, n);
    const kind = n.kind || "op";
    const dark = typeof n.heat === "number" && n.heat >= DARK_HEAT ? " terra-dark" : "";
    const g = svgEl("g", { class: `terra-node terra-${kind}${n.fetch ? " terra-fetch" : ""}${dark}`, "data-id": n.id }, layer);
    const x = n.x - n.w / 2;
    const y = n.y - n.h / 2;
    if (kind === "feed") {
      svgEl("ellipse", { cx: n.x, cy: n.y, rx: n.w / 2, ry: n.h / 2 }, g);
    } else {
      svgEl("rect", {
        x, y, width: n.w, height: n.h, rx: kind === "op" ? 3 : 8,
        fill: heatColor(n.heat), stroke: n.fetch ? "#c53030" : (KIND_STROKE[kind] || "#4a5568"),
      }, g);
    }
    const text = svgEl("text", { x: n.x, y: n.y + 4, "text-anchor": "middle" }, g);
    text.textContent = (kind === "group" || kind === "fold" ? "▸ " : "") + n.label;
    if (n.branch) svgEl("path", { d: `M${x + n.w - 7},${y - 6} l6,6 l-6,6 l-6,-6 z`, class: "terra-branch-mark" }, g);
    if (n.fetch) svgEl("circle", { cx: x + 4, cy: y + 4, r: 4, class: "terra-fetch-mark" }, g);
    const title = svgEl("title", {}, g);
    title.textContent = n.detail ? `${n.detail.op} @ ${n.detail.source || "?"}` : `${n.label} (click to open)`;
    g.addEventListener("click", (ev) => { ev.stopPropagation(); handlers.click(n); });
  }
  return byId;
}

function render({ model, el }) {
  const root = htmlEl("div", "terra-graph", el);
  const toolbar = htmlEl("div", "terra-toolbar", root);
  const titleEl = htmlEl("span", "terra-title", toolbar);
  const search = htmlEl("input", "terra-search", toolbar);
  search.type = "search";
  search.placeholder = "find op (e.g. addmm)…";
  const findBtn = htmlEl("button", "terra-find", toolbar, "Find");
  const fitBtn = htmlEl("button", "terra-fit", toolbar, "Fit");
  const refreshBtn = htmlEl("button", "terra-refresh", toolbar, "Refresh");
  const statusEl = htmlEl("span", "terra-status", toolbar);
  const body = htmlEl("div", "terra-body", root);
  const svg = svgEl("svg", { class: "terra-canvas" }, body);
  const layer = svgEl("g", { class: "terra-layer" }, svg);
  const panel = htmlEl("div", "terra-details", body);
  panel.style.display = "none";
  const legend = htmlEl("div", "terra-legend", root);
  const errorBox = htmlEl("div", "terra-error-box", root);
  const panzoom = new PanZoom(svg, layer);
  const markerId = "terra-arrow-" + Math.random().toString(36).slice(2);
  let byId = new Map();
  let drawnView = null;
  let scheduled = false;

  const send = (msg) => { try { model.send(msg); } catch (err) { showError(errorBox, err); } };
  const handlers = {
    markerId,
    toggle: (path) => send({ type: "toggle", path }),
    click: (n) => {
      if (panzoom.lastDragMoved) return;
      if (n.kind === "group") send({ type: "toggle", path: n.path });
      else if (n.kind === "fold") send({ type: "unfold", id: n.id });
      else { select(n.id); showDetails(panel, n); }
    },
  };

  function select(id) {
    for (const old of layer.querySelectorAll(".terra-selected")) old.classList.remove("terra-selected");
    if (!id) return;
    const g = layer.querySelector(`g.terra-node[data-id="${CSS.escape(id)}"]`);
    if (g) g.classList.add("terra-selected");
  }

  function update() {
    scheduled = false;
    try {
      titleEl.textContent = model.get("title") || "Terra graph";
      statusEl.textContent = model.get("status") || "";
      const error = model.get("error");
      const view = model.get("view") || {};
      if (error) {
        body.style.display = "none";
        legend.style.display = "none";
        showError(errorBox, error);
        drawnView = null;
        return;
      }
      if (!Array.isArray(view.nodes)) {
        body.style.display = "none";
        showError(errorBox, "no graph to show");
        return;
      }
      errorBox.replaceChildren();
      body.style.display = "";
      legend.style.display = "";
      if (view !== drawnView) {
        const first = drawnView === null;
        byId = drawGraph(layer, view, handlers);
        drawLegend(legend, view);
        drawnView = view;
        if (first) requestAnimationFrame(() => panzoom.fit(view.width || 0, view.height || 0));
      }
      const selected = model.get("selected");
      select(selected);
      const focus = model.get("focus");
      if (selected && focus !== update.lastFocus) {
        update.lastFocus = focus;
        const n = byId.get(selected);
        if (n) {
          panzoom.center(n.x, n.y, 1);
          showDetails(panel, n);
        }
      }
    } catch (err) {
      body.style.display = "none";
      showError(errorBox, `could not draw the graph: ${err && err.message ? err.message : err}`);
    }
  }
  update.lastFocus = model.get("focus");

  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(update, 0);
  };
  const traits = ["view", "error", "selected", "focus", "status", "title"];
  for (const t of traits) model.on(`change:${t}`, schedule);

  const doSearch = () => { if (search.value.trim()) send({ type: "search", query: search.value.trim() }); };
  search.addEventListener("keydown", (ev) => { if (ev.key === "Enter") doSearch(); });
  findBtn.addEventListener("click", doSearch);
  fitBtn.addEventListener("click", () => { if (drawnView) panzoom.fit(drawnView.width || 0, drawnView.height || 0); });
  refreshBtn.addEventListener("click", () => send({ type: "refresh" }));
  update();

  return () => {
    for (const t of traits) model.off(`change:${t}`, schedule);
    panzoom.destroy();
    root.remove();
  };
}

export default { render };
