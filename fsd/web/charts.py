"""Small server-side SVG charts for the statistics page (no JavaScript). All text is escaped."""

from __future__ import annotations

from markupsafe import Markup, escape

COLORS = {"answered": "#16a34a", "missed": "#dc2626", "abandoned": "#f59e0b", "voicemail": "#6366f1",
          "callback_requested": "#0ea5e9", "callback_completed": "#14b8a6", "callback_failed": "#78716c"}


def stacked_bars(categories: list[str], series: list[tuple[str, str, list[float]]], *, title: str = "",
                 width: int = 720, height: int = 220) -> Markup:
    """series: [(label, colour, values per category)] stacked per category, with a legend."""
    n = max(1, len(categories))
    totals = [sum(s[2][i] for s in series) for i in range(len(categories))]
    top = max(totals + [1])
    left, bottom, top_pad = 36, 36, 28
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    bw = plot_w / n
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">',
           f'<title>{escape(title)}</title>']
    for k in range(5):
        v = top * k / 4
        y = top_pad + plot_h - plot_h * k / 4
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" fill="#555">{v:.0f}</text>')
    every = max(1, n // 16)
    for i, cat in enumerate(categories):
        x = left + i * bw
        y = top_pad + plot_h
        for label, color, values in series:
            v = values[i]
            if v <= 0:
                continue
            h = plot_h * v / top
            y -= h
            out.append(f'<rect x="{x + bw * 0.12:.1f}" y="{y:.1f}" width="{bw * 0.76:.1f}" height="{h:.1f}" '
                       f'fill="{color}"><title>{escape(cat)}: {escape(label)} {v:g}</title></rect>')
        if i % every == 0:
            out.append(f'<text x="{x + bw / 2:.1f}" y="{top_pad + plot_h + 14}" text-anchor="middle" '
                       f'fill="#333">{escape(cat)}</text>')
    lx = left
    for label, color, _ in series:
        out.append(f'<rect x="{lx}" y="6" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{lx + 14}" y="15" fill="#333">{escape(label)}</text>')
        lx += 24 + 7 * len(label)
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text above went through escape()
