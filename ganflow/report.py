"""The report's own pages: training curves, discriminator score histograms, the funnel
table and playable video pages.

Charts are drawn with Pillow, which the workflow already needs, so the report adds no
plotting library to the install. Pages are single self-contained HTML files (the video
inside as a data URI): Snakemake's report shows HTML results in a frame, while it only
offers mp4 files as downloads.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from PIL import Image, ImageDraw, ImageFont

from .contact import TILES_KEY
from .media import save_png
from .tables import atomic_open, read_tsv
from .trainlog import read_log

log = logging.getLogger(__name__)

PANEL_SIZE = (720, 220)
COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]
KEPT, DROPPED = (31, 119, 180), (255, 127, 14)
_INK, _GRID, _FRAME = (20, 20, 20), (225, 225, 225), (120, 120, 120)
_FONT = ImageFont.load_default(size=13)
_SMALL = ImageFont.load_default(size=11)
_MARGIN = {"left": 66, "right": 14, "top": 28, "bottom": 44}
_MARKERS_UP_TO = 80  # points per series; sparse curves (SWD) need markers, dense ones do not

# Panels of the training-curve chart: title, y label, (log.csv column, legend label).
LOSS_PANELS = [
    ("Losses", "loss", [("loss_g", "G (non-saturating)"), ("loss_d", "D (logistic)")]),
    ("Discriminator outputs", "logit", [("d_real", "reals"), ("d_fake", "fakes")]),
    ("R1 penalty", "R1", [("r1", "R1")]),
    ("Augmentation probability", "p", [("augment_p", "ADA p")]),
]
SWD_PANEL = ("Sliced Wasserstein distance (fakes vs reals)", "SWD x 1e3", [("swd", "SWD")])
# Drawn under SWD when the log holds them (train.metrics_ticks with metrics files).
METRIC_PANELS = [
    ("Frechet Inception distance", "FID", [("fid", "FID")]),
    ("Kernel Inception distance", "KID", [("kid", "KID")]),
    ("Precision and recall (VGG16, k = 3)", "share", [("precision", "precision"), ("recall", "recall")]),
]


@dataclass(frozen=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _label(value: float, ticks: Sequence[float]) -> str:
    """A tick label with as many decimals as the tick step needs (0.25 -> 2, 5 -> 0)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = next((d for d in range(12) if abs(round(step, d) - step) <= 1e-9 * step), 12)
    return f"{value:.{decimals}f}"


def _span(values: Iterable[float], pad: float = 0.05) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi == lo:
        half = abs(lo) * 0.1 or 0.5
        return lo - half, hi + half
    return lo - pad * (hi - lo), hi + pad * (hi - lo)


class _Axes:
    """A framed plot area with ticks, grid, title and axis labels that maps data to pixels."""

    def __init__(self, title: str, xlabel: str, ylabel: str, xspan: tuple[float, float],
                 yspan: tuple[float, float], size: tuple[int, int] = PANEL_SIZE) -> None:
        self.image = Image.new("RGB", size, (255, 255, 255))
        self.draw = ImageDraw.Draw(self.image)
        w, h = size
        self.box = (_MARGIN["left"], _MARGIN["top"], w - _MARGIN["right"], h - _MARGIN["bottom"])
        self.xspan, self.yspan = xspan, yspan
        left, top, right, bottom = self.box
        xt = [t for t in nice_ticks(*xspan, count=8) if xspan[0] <= t <= xspan[1]]
        yt = [t for t in nice_ticks(*yspan, count=4) if yspan[0] <= t <= yspan[1]]
        for t in xt:
            x = self.px(t, yspan[0])[0]
            self.draw.line((x, top, x, bottom), fill=_GRID)
            self.draw.text((x, bottom + 4), _label(t, xt), fill=_INK, font=_SMALL, anchor="mt")
        for t in yt:
            y = self.px(xspan[0], t)[1]
            self.draw.line((left, y, right, y), fill=_GRID)
            self.draw.text((left - 5, y), _label(t, yt), fill=_INK, font=_SMALL, anchor="rm")
        self.draw.rectangle(self.box, outline=_FRAME)
        self.draw.text((left, 6), title, fill=_INK, font=_FONT)
        self.draw.text(((left + right) // 2, h - 6), xlabel, fill=_INK, font=_FONT, anchor="mb")
        self._ylabel(ylabel)

    def _ylabel(self, text: str) -> None:
        w, h = (int(v) + 2 for v in _FONT.getbbox(text)[2:])
        strip = Image.new("RGB", (w, h), (255, 255, 255))
        ImageDraw.Draw(strip).text((0, 0), text, fill=_INK, font=_FONT)
        strip = strip.rotate(90, expand=True)
        top, bottom = self.box[1], self.box[3]
        self.image.paste(strip, (4, max(0, (top + bottom - strip.height) // 2)))

    def px(self, x: float, y: float) -> tuple[float, float]:
        left, top, right, bottom = self.box
        (x0, x1), (y0, y1) = self.xspan, self.yspan
        return left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top)

    def legend(self, entries: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
        """Right-aligned in the header row, where it can never hide a curve."""
        x, y = self.box[2], 8
        for text, color in reversed(entries):
            width = int(_SMALL.getlength(text))
            self.draw.text((x, y), text, fill=_INK, font=_SMALL, anchor="rt")
            self.draw.rectangle((x - width - 20, y + 3, x - width - 6, y + 8), fill=color)
            x -= width + 30

    def note(self, text: str) -> None:
        left, top, right, bottom = self.box
        self.draw.text(((left + right) // 2, (top + bottom) // 2), text, fill=_FRAME, font=_FONT, anchor="mm")


def line_chart(series: Sequence[Series], *, title: str, xlabel: str, ylabel: str,
               xspan: tuple[float, float] | None = None, size: tuple[int, int] = PANEL_SIZE) -> Image.Image:
    """One panel of curves; points that are not finite numbers (ticks without a value) are
    left out, and a panel without any point says so instead of showing empty axes. Give
    `xspan` to line up stacked panels whose curves start at different x."""
    points = [[(x, y) for x, y in zip(s.xs, s.ys) if math.isfinite(x) and math.isfinite(y)] for s in series]
    xspan = xspan or _span((x for pts in points for x, _ in pts), pad=0.0)
    axes = _Axes(title, xlabel, ylabel, xspan, _span(y for pts in points for _, y in pts), size)
    if not any(points):
        axes.note("no values logged yet")
        return axes.image
    for pts, color in zip(points, COLORS * len(points)):
        xy = [axes.px(x, y) for x, y in pts]
        if len(xy) > 1:
            axes.draw.line(xy, fill=color, width=2, joint="curve")
        if len(xy) <= _MARKERS_UP_TO:
            for cx, cy in xy:
                axes.draw.ellipse((cx - 2.5, cy - 2.5, cx + 2.5, cy + 2.5), fill=color)
    axes.legend([(s.label, c) for s, c, pts in zip(series, COLORS * len(series), points) if pts])
    return axes.image


def histogram(groups: Sequence[tuple[str, Sequence[float], tuple[int, int, int]]], *, title: str,
              xlabel: str, bins: int | None = None, size: tuple[int, int] = PANEL_SIZE) -> Image.Image:
    """Stacked histogram of several groups of values over shared bins."""
    values = [v for _, vs, _ in groups for v in vs if math.isfinite(v)]
    if not values:
        axes = _Axes(title, xlabel, "images", (0.0, 1.0), (0.0, 1.0), size)
        axes.note("no scores")
        return axes.image
    bins = bins or min(40, max(5, math.ceil(math.sqrt(len(values)))))
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    width = (hi - lo) / bins
    counts = [[0] * bins for _ in groups]
    for g, (_, vs, _) in enumerate(groups):
        for v in vs:
            if math.isfinite(v):
                counts[g][min(bins - 1, int((v - lo) / width))] += 1
    top = max(sum(c[b] for c in counts) for b in range(bins))
    axes = _Axes(title, xlabel, "images", (lo, hi), (0.0, top * 1.12), size)
    for b in range(bins):
        base = 0
        for g, (_, _, color) in enumerate(groups):
            if counts[g][b]:
                x0, y0 = axes.px(lo + b * width, base + counts[g][b])
                x1, y1 = axes.px(lo + (b + 1) * width, base)
                axes.draw.rectangle((x0 + 1, y0, x1 - 1, y1), fill=color)
                base += counts[g][b]
    axes.legend([(f"{name} ({sum(c)})", color) for (name, _, color), c in zip(groups, counts) if sum(c)])
    return axes.image


def stack(panels: Sequence[Image.Image]) -> Image.Image:
    out = Image.new("RGB", (max(p.width for p in panels), sum(p.height for p in panels)), (255, 255, 255))
    y = 0
    for p in panels:
        out.paste(p, (0, y))
        y += p.height
    return out


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def log_columns(log_csv: str | os.PathLike) -> dict[str, list[float]]:
    """Columns of a training log.csv as floats; an empty or unparsable cell becomes NaN, so a
    tick that logged no SWD, or a line cut short by a kill, only loses that one point."""
    rows = read_log(log_csv, partial=True)
    names = [n for panel in LOSS_PANELS + [SWD_PANEL] + METRIC_PANELS for n, _ in panel[2]]
    return {name: [_number(r.get(name)) for r in rows] for name in ["kimg"] + names}


def training_curves(log_csv: str | os.PathLike, out_losses: str | os.PathLike, out_swd: str | os.PathLike,
                    *, title: str = "") -> int:
    """Loss, D output, R1 and ADA-p panels (one chart) and the SWD curve with, where the
    log has them, FID, KID, precision and recall (another) over kimg. Returns the number
    of logged ticks."""
    cols = log_columns(log_csv)
    prefix = f"{title}: " if title else ""
    xspan = _span(cols["kimg"], pad=0.0)

    def panel(spec: tuple) -> Image.Image:
        name, ylabel, series = spec
        return line_chart([Series(label, cols["kimg"], cols[c]) for c, label in series],
                          title=prefix + name, xlabel="training progress (kimg)", ylabel=ylabel, xspan=xspan)

    save_png(stack([panel(p) for p in LOSS_PANELS]), out_losses)
    measured = [p for p in METRIC_PANELS if any(math.isfinite(v) for c, _ in p[2] for v in cols[c])]
    save_png(stack([panel(p) for p in [SWD_PANEL] + measured]), out_swd)
    return len(cols["kimg"])


def score_histogram(rank_tsv: str | os.PathLike, out_png: str | os.PathLike, *,
                    keep_tsv: str | os.PathLike | None = None, title: str = "") -> dict[str, int]:
    """Histogram of a round's D scores, split into the images the next round kept and those it
    dropped when `keep_tsv` is given; images that could not be scored are counted in the title.
    Returns the counts drawn."""
    rows = read_tsv(rank_tsv)
    scored = [(r["image"], _number(r["score"])) for r in rows]
    unscored = sum(1 for _, s in scored if not math.isfinite(s))
    scored = [(image, s) for image, s in scored if math.isfinite(s)]
    kept = {r["image"] for r in read_tsv(keep_tsv)} if keep_tsv else {image for image, _ in scored}
    groups = [("kept", [s for image, s in scored if image in kept], KEPT),
              ("dropped", [s for image, s in scored if image not in kept], DROPPED)]
    head = f"{title}: " if title else ""
    head += f"{len(scored)} images scored" + (f", {unscored} could not be scored" if unscored else "")
    save_png(histogram(groups, title=head, xlabel="discriminator score (logit; low = least like the data)"),
              out_png)
    counts = {"kept": len(groups[0][1]), "dropped": len(groups[1][1]), "unscored": unscored}
    log.info("score histogram: %s", counts)
    return counts


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #111; background: #fff; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: 2px 10px; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.stage td {{ border-top: 1px solid #ccc; font-weight: 600; }}
tr.drop td {{ color: #8a3b00; }}
.bar {{ height: 12px; background: #1f77b4; }}
.bar.drop {{ background: #ff7f0e; }}
video {{ width: min(100%, 960px); image-rendering: pixelated; }}  /* tiny demo videos scale up */
img {{ image-rendering: pixelated; }}
figure {{ display: inline-block; margin: 0 16px 16px 0; vertical-align: top; }}
figure video {{ width: min(100%, 640px); }}
figcaption {{ color: #555; }}
</style></head>
<body><h3>{title}</h3>
{body}
</body></html>
"""


def _write_page(out_html: str | os.PathLike, title: str, body: str) -> None:
    with atomic_open(out_html) as fh:
        fh.write(_PAGE.format(title=html.escape(title), body=body))


def funnel_page(funnel_tsv: str | os.PathLike, out_html: str | os.PathLike) -> int:
    """The funnel table as a page. Returns the stage count."""
    table, stages = _funnel_table(funnel_tsv)
    _write_page(out_html, "Data funnel", table)
    return stages


def _funnel_table(funnel_tsv: str | os.PathLike) -> tuple[str, int]:
    """Each stage's count with a bar relative to the posts read, and under it the reasons
    (and counts) of what that step dropped, as an HTML table; and the number of stages."""
    rows = read_tsv(funnel_tsv)
    stages = [r for r in rows if not r["dropped_reason"]]
    first = max((int(_number(r["count"])) for r in stages[:1] if math.isfinite(_number(r["count"]))), default=0)

    def bar(n: float, cls: str = "bar") -> str:
        share = 100.0 * n / first if first and math.isfinite(n) else 0.0
        return f'<div class="{cls}" style="width:{min(100.0, share):.1f}%"></div>'

    lines = ["<table>", "<tr><th>stage</th><th>images</th><th>faces</th><th>dropped because</th><th></th>"
             '<th style="width:320px"></th></tr>']
    for r in rows:
        if r["dropped_reason"]:
            n = _number(r["dropped"])
            lines.append(f'<tr class="drop"><td></td><td></td><td></td><td>{html.escape(r["dropped_reason"])}</td>'
                         f'<td class="n">{html.escape(r["dropped"])}</td><td>{bar(n, "bar drop")}</td></tr>')
        else:
            n = _number(r["count"])
            # a table without the images and faces columns (made by hand) shows its count as images
            images, faces = r.get("images", r["count"]), r.get("faces", "")
            lines.append(f'<tr class="stage"><td>{html.escape(r["stage"])}</td><td class="n">{html.escape(images)}'
                         f'</td><td class="n">{html.escape(faces)}</td><td></td><td></td><td>{bar(n)}</td></tr>')
    lines.append("</table>")
    return "\n".join(lines), len(stages)


def video_page(mp4: str | os.PathLike, out_html: str | os.PathLike, *, title: str = "") -> int:
    """A page that plays the video (looped, muted so browsers may autoplay it) from a data URI,
    so it needs no file beside it. Returns the video's size in bytes."""
    size = Path(mp4).stat().st_size
    name = html.escape(Path(mp4).name)
    body = (f'<video controls autoplay muted loop playsinline src="{_data_uri(Path(mp4))}"></video>\n'
            f"<p>{name}, {size / 1024:.0f} KiB (the player menu offers a download)</p>")
    _write_page(out_html, title or Path(mp4).stem, body)
    return size


def _data_uri(path: Path) -> str:
    """The file as a data: URI, so a page needs nothing beside it."""
    mime = "video/mp4" if path.suffix == ".mp4" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


EMBED_LIMIT = 32 << 20  # bytes: larger videos are linked beside the page instead of embedded
READABLE = 480  # px: narrower images are shown enlarged by a whole factor (nearest neighbour)


def _media(path: Path, out_dir: Path, embed_limit: int) -> str:
    """One image or video as a captioned <figure>: images embedded, small ones shown at the
    largest whole multiple of their size that fits READABLE px (so over half of it); videos
    embedded up to `embed_limit` bytes, linked by a path relative to the page above it."""
    name = html.escape(path.name)
    if path.suffix == ".mp4":
        src = _data_uri(path) if path.stat().st_size <= embed_limit else html.escape(os.path.relpath(path, out_dir))
        return (f'<figure><video controls autoplay muted loop playsinline src="{src}"></video>'
                f"<figcaption>{name}</figcaption></figure>")
    with Image.open(path) as img:
        width = img.width
        tiles = img.info.get(TILES_KEY)
    shown = width * max(1, READABLE // width)
    img_tag = f'<img src="{_data_uri(path)}" width="{shown}" alt="{name}"'
    if not tiles:
        return f"<figure>{img_tag}><figcaption>{name}</figcaption></figure>"
    # A contact sheet: each tile's full label and file as a tooltip (its drawn label is cut).
    scale, map_name = shown / width, f"tiles-{html.escape(path.stem)}"
    areas = "".join(
        f'<area shape="rect" coords="{",".join(str(round(v * scale)) for v in t["box"])}" '
        f'title="{html.escape(t["label"])}: {html.escape(Path(t["path"]).name)}" alt="{html.escape(t["label"])}">'
        for t in json.loads(tiles))
    return (f'<figure>{img_tag} usemap="#{map_name}"><map name="{map_name}">{areas}</map>'
            f"<figcaption>{name}</figcaption></figure>")


# The rounds table's metric columns: metrics.json's key, heading, scale, decimals.
ROUND_METRICS = (("fid", "FID", 1, 2), ("kid", "KID x 1e3", 1e3, 2), ("precision", "precision", 1, 3),
                 ("recall", "recall", 1, 3))


def _last(values: Sequence[float]) -> float:
    return next((v for v in reversed(values) if math.isfinite(v)), math.nan)


def rounds_table(rounds: Sequence[tuple[str | os.PathLike, str | os.PathLike | None]]) -> str:
    """Per round (its log.csv, its metrics.json or None): the kimg trained, the last SWD of
    the log, and the field's metrics where they were computed, as an HTML table."""
    lines = ["<table>", "<tr><th>round</th><th>kimg</th><th>SWD x 1e3</th>"
             + "".join(f"<th>{head}</th>" for _, head, _, _ in ROUND_METRICS) + "</tr>"]
    for r, (log_csv, metrics_json) in enumerate(rounds, 1):
        cols = log_columns(log_csv)
        measured = json.loads(Path(metrics_json).read_text()) if metrics_json else {}
        cells = [f"{_last(cols['kimg']):.1f}", f"{_last(cols['swd']):.1f}"] + [
            f"{measured[key] * scale:.{places}f}" if key in measured else "" for key, _, scale, places in ROUND_METRICS]
        lines.append(f"<tr><td>{r}</td>" + "".join(f'<td class="n">{c}</td>' for c in cells) + "</tr>")
    lines.append("</table>")
    if not any(m for _, m in rounds):
        lines.append("<p>FID, KID, precision and recall were not computed: metrics.inception and metrics.vgg16 "
                     "name no file (README Metrics).</p>")
    return "\n".join(lines)


def overview_page(out_html: str | os.PathLike, *, title: str, funnel_tsv: str | os.PathLike,
                  sections: Sequence[tuple[str, Sequence[str | os.PathLike]]],
                  rounds: Sequence[tuple[str | os.PathLike, str | os.PathLike | None]] = (),
                  embed_limit: int = EMBED_LIMIT) -> int:
    """Everything on one page, in the order of the chain: the funnel table, the rounds'
    metrics (rounds_table), then each (heading, files) section of images and videos.
    Returns the number of media shown."""
    out_dir = Path(out_html).parent
    table, _ = _funnel_table(funnel_tsv)
    body, count = ["<h4>Data funnel</h4>", table], 0
    if rounds:
        body += ["<h4>Rounds</h4>", rounds_table(rounds)]
    for heading, files in sections:
        if files:
            body.append(f"<h4>{html.escape(heading)}</h4>")
            body.extend(_media(Path(f), out_dir, embed_limit) for f in files)
            count += len(files)
    _write_page(out_html, title, "\n".join(body))
    return count
