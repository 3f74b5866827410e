"""Inline SVG charts for the HTML report (no JavaScript, no external files, so the report is one self-contained
file and renders the same in a browser and in the PDF). Axis labels use two significant figures."""

from __future__ import annotations

import html
import math

from ftaudit.reporting.document import sig2

W, H = 640, 260
PAD_L, PAD_R, PAD_T, PAD_B = 70, 20, 30, 40
COLOURS = ("#2f6db5", "#e08a1e", "#3a9a5b", "#b53a3a")


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _frame(title: str, body: str, height: int = H) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" '
            f'role="img" aria-label="{_esc(title)}" font-family="sans-serif" font-size="11">'
            f'<title>{_esc(title)}</title><text x="{W / 2}" y="16" text-anchor="middle" font-size="13" '
            f'font-weight="bold">{_esc(title)}</text>{body}</svg>')


def line_chart(title: str, xs: list[float], series: list[tuple[str, list[float]]], *, x_label: str,
               y_label: str, hlines: list[tuple[str, float]] = (), log_y: bool = False) -> str:
    """Lines over x; optional horizontal reference lines (thresholds). log_y for figures many decades apart."""
    values = [v for _, ys in series for v in ys] + [v for _, v in hlines]
    if log_y:
        values = [v for v in values if v > 0]
    if not xs or not values:
        return ""
    tf = (lambda v: math.log10(v)) if log_y else (lambda v: v)  # noqa: E731
    lo, hi = min(tf(v) for v in values), max(tf(v) for v in values)
    if log_y:
        lo, hi = math.floor(lo), math.ceil(hi)
    if hi == lo:
        hi = lo + 1
    if not log_y:
        lo = min(lo, 0)
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def px(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * pw

    def py(v: float) -> float:
        return PAD_T + ph - (tf(v) - lo) / (hi - lo) * ph

    parts = [f'<rect x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    ticks = range(int(lo), int(hi) + 1, max(1, int((hi - lo) // 6) or 1)) if log_y else \
        [lo + (hi - lo) * i / 4 for i in range(5)]
    for t in ticks:
        v = 10 ** t if log_y else t
        y = py(v)
        label = f"1e{t}" if log_y else sig2(v)  # decades as powers of ten: full digits would not fit the margin
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{PAD_L + pw}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">{_esc(label)}</text>')
    for label, v in hlines:
        if log_y and v <= 0:
            continue
        y = py(v)
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{PAD_L + pw}" y2="{y:.1f}" stroke="{COLOURS[3]}" '
                     f'stroke-dasharray="6 3"/><text x="{PAD_L + pw - 4}" y="{y - 4:.1f}" text-anchor="end" '
                     f'fill="{COLOURS[3]}">{_esc(label)} {_esc(sig2(v))}</text>')
    for i, (label, ys) in enumerate(series):
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True) if not log_y or y > 0)
        colour = COLOURS[i % 3]
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{PAD_L + 6}" y="{PAD_T + 14 + 13 * i}" fill="{colour}">{_esc(label)}</text>')
    parts.append(f'<text x="{PAD_L + pw / 2}" y="{H - 8}" text-anchor="middle">{_esc(x_label)} '
                 f'({_esc(sig2(x0))}–{_esc(sig2(x1))})</text>')
    parts.append(f'<text x="12" y="{PAD_T + ph / 2}" transform="rotate(-90 12 {PAD_T + ph / 2})" '
                 f'text-anchor="middle">{_esc(y_label)}{" (log scale)" if log_y else ""}</text>')
    return _frame(title, "".join(parts))


def bar_chart(title: str, labels: list[str], series: list[tuple[str, list[float]]], *, unit: str = "") -> str:
    """Horizontal bars, one group per label, one bar per series (e.g. base and tuned)."""
    if not labels or not series:
        return ""
    vmax = max([v for _, vs in series for v in vs if v is not None] + [0])
    vmax = vmax if vmax > 0 else 1
    bar_h, gap = 14, 8
    group_h = bar_h * len(series) + gap
    label_w = 210
    height = PAD_T + group_h * len(labels) + 30 + 14 * (len(series) > 1)
    pw = W - label_w - 70
    parts = []
    for gi, label in enumerate(labels):
        y0 = PAD_T + gi * group_h
        parts.append(f'<text x="{label_w - 6}" y="{y0 + bar_h * len(series) / 2 + 4:.1f}" text-anchor="end">'
                     f'{_esc(label[:38])}</text>')
        for si, (_, vs) in enumerate(series):
            v = vs[gi]
            if v is None:
                continue
            w = max(v, 0) / vmax * pw
            y = y0 + si * bar_h
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                         f'fill="{COLOURS[si % len(COLOURS)]}"/><text x="{label_w + w + 4:.1f}" y="{y + 10}">'
                         f'{_esc(sig2(v))}{_esc(unit)}</text>')
    if len(series) > 1:
        y = height - 12
        for si, (name, _) in enumerate(series):
            x = label_w + si * 110
            parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{COLOURS[si % len(COLOURS)]}"/>'
                         f'<text x="{x + 14}" y="{y}">{_esc(name)}</text>')
    return _frame(title, "".join(parts), height)
