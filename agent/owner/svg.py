"""Small inline SVG bar charts (no script, no framework): they scale to the page's width, phones included."""

from __future__ import annotations

from html import escape

COLOURS = ("#2f6f9f", "#d08c2e", "#4f8f4f", "#8f4f8f", "#9f3f3f", "#5f5f5f")


def bars(title: str, labels: list[str], series: dict[str, list[int]], unit: str = "") -> str:
    """A grouped bar chart: one group per label, one bar per series; an accessible title and a legend."""
    width, height, left, bottom, top = 640, 220, 40, 30, 10
    values = [v for vs in series.values() for v in vs]
    if not labels or not values:
        return f'<p class="empty">{escape(title)}: nothing recorded yet.</p>'
    peak = max(max(values), 1)
    low = min(min(values), 0)
    span = peak - low or 1
    plot_h = height - bottom - top
    group_w = (width - left) / len(labels)
    bar_w = max(1.0, group_w * 0.8 / max(1, len(series)))

    def y(v: int) -> float:
        return top + plot_h * (peak - v) / span

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"'
        f' xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{width}" y2="{y(0):.1f}" stroke="#999"/>',
        f'<text x="2" y="{top + 10}" font-size="11">{peak}{escape(unit)}</text>',
    ]
    step = max(1, len(labels) // 12)  # at most about a dozen axis labels, so they stay readable on a phone
    for i, label in enumerate(labels):
        x0 = left + i * group_w + group_w * 0.1
        for j, (name, vs) in enumerate(series.items()):
            v = vs[i]
            top_y, bottom_y = sorted((y(v), y(0)))
            parts.append(
                f'<rect x="{x0 + j * bar_w:.1f}" y="{top_y:.1f}" width="{bar_w:.1f}" height="{bottom_y - top_y:.1f}"'
                f' fill="{COLOURS[j % len(COLOURS)]}"><title>{escape(label)} {escape(name)}: {v}{escape(unit)}'
                "</title></rect>"
            )
        if i % step == 0:
            parts.append(f'<text x="{x0:.1f}" y="{height - 12}" font-size="11">{escape(label)}</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i class="c{j % len(COLOURS)}"></i>{escape(name)}</span>' for j, name in enumerate(series)
    )
    return f"<figure>{''.join(parts)}<figcaption>{escape(title)} {legend}</figcaption></figure>"
