"""Server-side SVG charts: a district band (p25 to p75) with its median, and optionally one shop's series.

Pure functions from numbers to an SVG string; no scripts, no assets from the network, and the
drawing scales to the page width (viewBox), so it reads on a phone.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 42
LABEL_STEPS = (1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 96, 168, 192, 288, 336, 672, 1344, 2688)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def _empty_text(reason: str, x: float, y: float, width: int = 90) -> str:
    """The reason a chart is empty, wrapped onto lines of about `width` characters (SVG text does not wrap)."""
    lines: list[str] = []
    for word in reason.split():
        if lines and len(lines[-1]) + len(word) < width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    spans = "".join(
        f'<tspan x="{x}" dy="{0 if i == 0 else 16}">{html.escape(line)}</tspan>' for i, line in enumerate(lines)
    )
    top = y - 8 * (len(lines) - 1)
    return f'<text x="{x}" y="{top}" text-anchor="middle" class="empty" font-size="12">{spans}</text>'


def _path(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))


def band_chart(
    title: str,
    labels: Sequence[str],
    p25: Sequence[float | None],
    median: Sequence[float | None],
    p75: Sequence[float | None],
    own: Sequence[float | None] | None = None,
    own_label: str = "this shop",
    empty: str = "no data yet",
    compare: Sequence[float | None] | None = None,
    compare_label: str = "a week earlier",
) -> str:
    """An SVG chart; every series may have gaps (None), which break the band and the lines. With nothing to
    draw it shows `empty`: say why, not just that. `compare` is the same series an earlier period (dashed)."""
    n = len(labels)
    esc = html.escape
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart"'
        f' aria-label="{esc(title)}">'
        f'<text x="{LEFT}" y="18" class="title" font-size="14" font-weight="bold">{esc(title)}</text>'
    )
    values = [v for series in (p75, median, own or (), compare or ()) for v in series if v is not None]
    if n == 0 or not values:
        return head + _empty_text(empty, WIDTH / 2, HEIGHT / 2) + "</svg>"
    low = min(0.0, min(values))
    high = _nice_max(max(values))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - low) / (high - low))

    parts = [head]
    for k in range(5):
        v = low + (high - low) * k / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">{v:g}</text>'
        )

    # As many labels as fit side by side at about 6 px per character, so dated labels never overlap; steps are
    # whole hours, days or weeks for hourly and 15-minute windows, so labels line up with midnight.
    def fits(c: int) -> bool:
        widest = max(len(lab) for lab in labels[::c])
        return -(-n // c) <= max(1, int(plot_w // (widest * 6 + 12)))

    step = next((c for c in LABEL_STEPS if fits(c)), max(1, n // 6))
    for i in range(0, n, step):
        parts.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="10">'
            f"{esc(labels[i])}</text>"
        )
    # The band: one closed polygon per run of windows that have a benchmark.
    run: list[int] = []
    runs: list[list[int]] = []
    for i in range(n):
        if p25[i] is not None and p75[i] is not None:
            run.append(i)
        elif run:
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    for r in runs:
        upper = [(x(i), y(float(p75[i] or 0))) for i in r]
        lower = [(x(i), y(float(p25[i] or 0))) for i in reversed(r)]
        parts.append(
            f'<path class="band" data-points="{len(r)}" d="{_path(upper + lower)} Z"'
            ' fill="#9ecae1" fill-opacity="0.55" stroke="none"/>'
        )
    lines = [
        (compare or [], "compare", "#737373", 1.5),
        (median, "median", "#08519c", 2),
        (own or [], "own", "#d94801", 2.5),
    ]
    for series, cls, colour, width in lines:
        pts = [(x(i), y(float(v))) for i, v in enumerate(series) if v is not None]
        if not pts:
            continue
        dash = ' stroke-dasharray="5 3"' if cls == "compare" else ""
        parts.append(
            f'<path class="{cls}" data-points="{len(pts)}" d="{_path(pts)}" fill="none"'
            f' stroke="{colour}" stroke-width="{width}"{dash}/>'
        )
        if cls == "compare":
            continue
        parts.extend(
            f'<circle class="{cls}-pt" cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{colour}"/>' for px, py in pts
        )
    legend_y = HEIGHT - 8
    parts.append(
        f'<rect x="{LEFT}" y="{legend_y - 9}" width="14" height="9" fill="#9ecae1"/>'
        f'<text x="{LEFT + 18}" y="{legend_y}" font-size="11">district p25-p75</text>'
        f'<line x1="{LEFT + 130}" x2="{LEFT + 146}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="#08519c"'
        f' stroke-width="2"/><text x="{LEFT + 150}" y="{legend_y}" font-size="11">district median</text>'
    )
    if own is not None:
        parts.append(
            f'<line x1="{LEFT + 260}" x2="{LEFT + 276}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="#d94801"'
            f' stroke-width="2.5"/><text x="{LEFT + 280}" y="{legend_y}" font-size="11">{esc(own_label)}</text>'
        )
    if compare is not None:
        parts.append(
            f'<line x1="{LEFT + 420}" x2="{LEFT + 436}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="#737373"'
            f' stroke-width="1.5" stroke-dasharray="5 3"/>'
            f'<text x="{LEFT + 440}" y="{legend_y}" font-size="11">{esc(compare_label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def share_chart(
    title: str,
    categories: Sequence[str],
    p25: Sequence[float | None],
    median: Sequence[float | None],
    p75: Sequence[float | None],
    own: Sequence[float | None] | None = None,
    own_label: str = "this shop",
) -> str:
    """Horizontal bars, one row per category: the district p25-p75 band of the share (0..1, shown in %),
    its median as a tick, and optionally one shop's own share as a dot. A category without a district
    band (None: fewer than k shops report it) shows only the shop's own dot."""
    n = len(categories)
    esc = html.escape
    row_h, top, left, right = 26, 34, 110, 16
    height = top + max(n, 1) * row_h + 34
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" class="chart shares"'
        f' aria-label="{esc(title)}">'
        f'<text x="{LEFT}" y="18" class="title" font-size="14" font-weight="bold">{esc(title)}</text>'
    )
    if n == 0:
        empty = f'<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle" class="empty">no data yet</text>'
        return head + empty + "</svg>"
    values = [v for v in (*p75, *(own or ())) if v is not None] or [1.0]
    high = max(min(1.0, _nice_max(max(values) * 100) / 100), max(values)) if max(values) > 0 else 1.0
    plot_w = WIDTH - left - right

    def x(v: float) -> float:
        return left + plot_w * max(0.0, v) / high

    parts = [head]
    for k in range(5):
        v = high * k / 4
        parts.append(
            f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top - 4}" y2="{top + n * row_h}" stroke="#ddd"/>'
            f'<text x="{x(v):.1f}" y="{top + n * row_h + 14}" text-anchor="middle" font-size="11">{v * 100:g}%</text>'
        )
    for i, category in enumerate(categories):
        y0 = top + i * row_h
        mid = y0 + row_h / 2
        parts.append(f'<text x="{left - 6}" y="{mid + 4:.1f}" text-anchor="end" font-size="12">{esc(category)}</text>')
        low_q, mid_q, high_q = p25[i], median[i], p75[i]
        if low_q is not None and mid_q is not None and high_q is not None:
            parts.append(
                f'<rect class="share-band" data-category="{esc(category)}" x="{x(low_q):.1f}" y="{y0 + 5:.1f}"'
                f' width="{max(x(high_q) - x(low_q), 1.0):.1f}" height="{row_h - 10}" fill="#9ecae1"'
                f' fill-opacity="0.75"><title>{esc(category)}: district p25 {low_q:.1%}, p75 {high_q:.1%}</title>'
                f'</rect><line class="share-median" x1="{x(mid_q):.1f}" x2="{x(mid_q):.1f}" y1="{y0 + 2:.1f}"'
                f' y2="{y0 + row_h - 2:.1f}" stroke="#08519c" stroke-width="3"/>'
            )
        mine = own[i] if own is not None else None
        if mine is not None:
            parts.append(
                f'<circle class="share-own" cx="{x(mine):.1f}" cy="{mid:.1f}" r="5" fill="#d94801">'
                f"<title>{esc(own_label)}: {esc(category)} {mine:.1%}</title></circle>"
            )
    legend_y = height - 8
    parts.append(
        f'<rect x="{LEFT}" y="{legend_y - 9}" width="14" height="9" fill="#9ecae1"/>'
        f'<text x="{LEFT + 18}" y="{legend_y}" font-size="11">district p25-p75</text>'
        f'<line x1="{LEFT + 138}" x2="{LEFT + 138}" y1="{legend_y - 10}" y2="{legend_y + 1}" stroke="#08519c"'
        f' stroke-width="3"/><text x="{LEFT + 146}" y="{legend_y}" font-size="11">district median</text>'
    )
    if own is not None:
        parts.append(
            f'<circle cx="{LEFT + 272}" cy="{legend_y - 4}" r="5" fill="#d94801"/>'
            f'<text x="{LEFT + 282}" y="{legend_y}" font-size="11">{esc(own_label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
