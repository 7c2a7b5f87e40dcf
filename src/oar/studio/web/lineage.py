"""The lineage graph as server-side SVG: columns from sources to sinks, every node a link."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 190, 44, 70, 22, 12
COLOURS = {"dataset": "#2f7d4f", "run": "#8a5a00", "model": "#2857a4"}


def lineage_svg(graph: dict[str, Any]) -> Markup:
    nodes = {n["id"]: n for n in graph["nodes"]}
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for edge in graph["edges"]:
        parents[edge["to"]].append(edge["from"])
    column: dict[str, int] = {}

    def depth(node: str, seen: frozenset[str] = frozenset()) -> int:
        if node not in column:
            column[node] = (
                0 if not parents[node] or node in seen else 1 + max(depth(p, seen | {node}) for p in parents[node])
            )
        return column[node]

    rows: dict[int, int] = {}
    position: dict[str, tuple[int, int]] = {}
    for node in nodes:
        col = depth(node)
        row = rows.get(col, 0)
        rows[col] = row + 1
        position[node] = (PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    width = PAD * 2 + (max(column.values(), default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values(), default=1) * (NODE_H + GAP_Y) - GAP_Y
    parts = [
        f'<svg class="lineage" role="img" aria-label="lineage graph" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#777"/></marker></defs>',
    ]
    for edge in graph["edges"]:
        (x1, y1), (x2, y2) = position[edge["from"]], position[edge["to"]]
        parts.append(
            f'<line x1="{x1 + NODE_W}" y1="{y1 + NODE_H // 2}" x2="{x2}" y2="{y2 + NODE_H // 2}" '
            'stroke="#777" stroke-width="1.5" marker-end="url(#arrow)"/>'
        )
    for node_id, node in nodes.items():
        x, y = position[node_id]
        colour = COLOURS.get(node["kind"], "#555")
        stroke = 'stroke="#111" stroke-width="3"' if node.get("current") else f'stroke="{colour}" stroke-width="1.5"'
        parts.append(
            f'<a href="{escape(node["url"])}" class="lineage-node" data-kind="{escape(node["kind"])}">'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="#fff" {stroke}/>'
            f'<text x="{x + 10}" y="{y + 17}" font-size="11" fill="{colour}">{escape(node["kind"])}</text>'
            f'<text x="{x + 10}" y="{y + 34}" font-size="13" fill="#111">{escape(node["label"][:26])}</text></a>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
