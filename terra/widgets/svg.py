"""Self-contained static SVG/HTML for a laid-out view, the speedup chart and error boxes.

These go into the ``text/html`` part of every display bundle, so that an exported
notebook (nbconvert HTML) shows the graph and the chart without widget state or
JavaScript. When ``terra._C.visualizer`` is built, its C++ renderer draws graphs;
this module is the pure-Python renderer with the same look, used otherwise.
"""

from __future__ import annotations

import html
import json

__all__ = ["heat_color", "render_graph_svg", "native_graph_svg", "graph_html", "error_html",
           "NO_TIME_FILL"]

NO_TIME_FILL = "#f4f6f8"
DARK_HEAT = 0.6  # from this heat on, labels are drawn white for contrast
# YlOrRd, light to dark: per-node time, scaled by log1p(time) / log1p(max time).
_HEAT_STOPS = [(255, 255, 204), (254, 217, 118), (253, 141, 60), (227, 26, 28), (128, 0, 38)]
_KIND_STROKE = {"op": "#4a5568", "group": "#2b6cb0", "fold": "#6b46c1", "feed": "#2f855a"}


def heat_color(heat) -> str:
    """Fill colour for a heat in [0, 1] (None: no time measured)."""
    if heat is None:
        return NO_TIME_FILL
    t = min(max(float(heat), 0.0), 1.0) * (len(_HEAT_STOPS) - 1)
    i = min(int(t), len(_HEAT_STOPS) - 2)
    f = t - i
    a, b = _HEAT_STOPS[i], _HEAT_STOPS[i + 1]
    return "#" + "".join(f"{round(a[k] + (b[k] - a[k]) * f):02x}" for k in range(3))


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _path_d(points) -> str:
    if not points:
        return ""
    d = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    rest = points[1:]
    if len(rest) % 3 == 0:
        for i in range(0, len(rest), 3):
            (x1, y1), (x2, y2), (x3, y3) = rest[i:i + 3]
            d.append(f"C{x1:.1f},{y1:.1f} {x2:.1f},{y2:.1f} {x3:.1f},{y3:.1f}")
    else:
        d.extend(f"L{x:.1f},{y:.1f}" for x, y in rest)
    return "".join(d)


def _node_svg(n: dict) -> str:
    x, y, w, h = n["x"] - n["w"] / 2, n["y"] - n["h"] / 2, n["w"], n["h"]
    kind = n.get("kind", "op")
    stroke = "#c53030" if n.get("fetch") else _KIND_STROKE.get(kind, "#4a5568")
    width = 2.5 if n.get("fetch") else 1.2
    parts = [f'<g class="tn tn-{kind}" data-id="{_esc(n["id"])}">']
    if kind == "feed":
        parts.append(f'<ellipse cx="{n["x"]:.1f}" cy="{n["y"]:.1f}" rx="{w / 2:.1f}" '
                     f'ry="{h / 2:.1f}" fill="#e6fffa" stroke="{stroke}" stroke-width="1.2"/>')
    else:
        dash = ' stroke-dasharray="5,3"' if kind == "fold" else ""
        radius = 8 if kind in ("group", "fold") else 3
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                     f'rx="{radius}" fill="{heat_color(n.get("heat"))}" stroke="{stroke}" '
                     f'stroke-width="{width}"{dash}/>')
    prefix = "▸ " if kind in ("group", "fold") else ""
    heat = n.get("heat")
    fill = ' fill="#fff"' if heat is not None and heat >= DARK_HEAT else ""
    parts.append(f'<text x="{n["x"]:.1f}" y="{n["y"] + 4:.1f}" text-anchor="middle"{fill}>'
                 f'{_esc(prefix + n["label"])}</text>')
    if n.get("branch"):
        parts.append(f'<path d="M{x + w - 7:.1f},{y - 6:.1f} l6,6 l-6,6 l-6,-6 z" '
                     f'fill="#dd6b20"><title>branch point</title></path>')
    if n.get("fetch"):
        parts.append(f'<circle cx="{x + 4:.1f}" cy="{y + 4:.1f}" r="4" fill="#c53030">'
                     f'<title>fetch: Python waits for this value</title></circle>')
    parts.append("</g>")
    return "".join(parts)


def _edge_svg(e: dict) -> str:
    d = _path_d(e.get("points") or [])
    if not d:
        return ""
    if e.get("kind") == "path":
        color, width = ("#dd6b20", 3) if e.get("last") else ("#ed8936", 1.5)
        label = ""
        pts = e["points"]
        if e.get("label"):
            mx, my = pts[len(pts) // 2]
            label = (f'<text x="{mx + 4:.1f}" y="{my:.1f}" class="tl" fill="#c05621">'
                     f'{_esc(e["label"])}{" (last)" if e.get("last") else ""}</text>')
        return (f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{width}" '
                f'stroke-dasharray="6,3" marker-end="url(#ta)"/>{label}')
    return f'<path d="{d}" fill="none" stroke="#a0aec0" stroke-width="1" marker-end="url(#ta)"/>'


def _legend_svg(view: dict, top: float) -> str:
    rng = view.get("time_range_us")
    items = [('<rect x="0" y="0" width="12" height="12" fill="none" stroke="#c53030" '
              'stroke-width="2.5"/>', "fetch"),
             ('<path d="M6,0 l6,6 l-6,6 l-6,-6 z" fill="#dd6b20"/>', "branch"),
             ('<ellipse cx="6" cy="6" rx="6" ry="5" fill="#e6fffa" stroke="#2f855a"/>', "feed"),
             ('<rect x="0" y="0" width="12" height="12" rx="3" fill="none" stroke="#6b46c1" '
              'stroke-dasharray="3,2"/>', "×N fold")]
    out = [f'<g class="tlegend" transform="translate(8,{top:.1f})">']
    x = 0
    for shape, name in items:
        out.append(f'<g transform="translate({x},0)">{shape}<text x="16" y="10">{name}</text></g>')
        x += 28 + 7 * len(name)
    if rng:
        out.append(f'<text x="{x}" y="10">time {rng[0]:.1f} µs</text>')
        x += 80
        for i in range(10):
            out.append(f'<rect x="{x + i * 8}" y="0" width="8" height="12" '
                       f'fill="{heat_color(i / 9)}"/>')
        out.append(f'<text x="{x + 84}" y="10">{rng[1]:.1f} µs</text>')
    else:
        out.append(f'<text x="{x}" y="10">no per-node times yet</text>')
    out.append("</g>")
    return "".join(out)


def render_graph_svg(view: dict) -> str:
    """One self-contained <svg> of a laid-out view: clusters, edges, nodes, legend."""
    width, height = float(view.get("width", 0)), float(view.get("height", 0))
    pad, legend_h = 8.0, 26.0
    total_w, total_h = max(width + 2 * pad, 420.0), height + 2 * pad + legend_h
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="terra-graph-svg" '
           f'width="{total_w:.0f}" height="{total_h:.0f}" '
           f'viewBox="0 0 {total_w:.0f} {total_h:.0f}" '
           f'style="font: 12px sans-serif; max-width: 100%; height: auto">',
           '<defs><marker id="ta" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
           'markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
           'fill="#718096"/></marker></defs>',
           '<style>.tl{font-size:11px}.tc{font-size:11px;fill:#2b6cb0}</style>',
           f'<g transform="translate({pad},{pad})">']
    for c in view.get("clusters", []):
        out.append(f'<g class="tcluster" data-id="{_esc(c["id"])}"><rect x="{c["x"]:.1f}" '
                   f'y="{c["y"]:.1f}" width="{c["w"]:.1f}" height="{c["h"]:.1f}" rx="6" '
                   f'fill="#ebf4ff" fill-opacity="0.35" stroke="#90cdf4"/>'
                   f'<text class="tc" x="{c["x"] + 6:.1f}" y="{c["y"] + 12:.1f}">▾ '
                   f'{_esc(c["label"])}</text></g>')
    out.extend(_edge_svg(e) for e in view.get("edges", []))
    out.extend(_node_svg(n) for n in view.get("nodes", []))
    out.append("</g>")
    out.append(_legend_svg(view, height + 2 * pad + 4))
    out.append("</svg>")
    return "".join(out)


def native_graph_svg(view: dict) -> str | None:
    """The C++ renderer's SVG (terra._C.visualizer.render_svg), or None if not built."""
    from .layout import _native  # noqa: PLC0415 (layout imports nothing from here)

    native = _native()
    if native is None or not hasattr(native, "render_svg"):
        return None
    try:
        return native.render_svg(json.dumps(view))
    except (ValueError, RuntimeError):
        return None


def graph_html(view: dict, title: str) -> str:
    """The text/html part of a graph bundle: a title line and the static SVG."""
    svg = native_graph_svg(view) or render_graph_svg(view)
    shown = len(view.get("nodes", []))
    return (f'<div class="terra-graph-static"><div style="font:13px sans-serif;margin:4px 0">'
            f'<b>{_esc(title)}</b> — {view.get("total_nodes", shown)} nodes '
            f'({shown} boxes shown; static view)</div>'
            f'<div style="overflow:auto;max-height:640px">{svg}</div></div>')


def error_html(message: str, title: str = "Terra graph") -> str:
    """A visible, self-contained error box for the output area."""
    return (f'<div class="terra-error" style="border:1px solid #e53e3e;background:#fff5f5;'
            f'color:#742a2a;padding:8px 12px;border-radius:4px;font:13px sans-serif">'
            f'<b>{_esc(title)}:</b> {_esc(message)}</div>')
