"""An embedded Danbooru-style mirror, drawn procedurally, so the demo needs no download.

The mirror imitates what a real Danbooru archive throws at the workflow: the
`original/{id % 1000:04d}/{id}.{ext}` layout, JSON-lines metadata in both the
Danbooru2018-2020 and the Danbooru2021 formats, and a share of junk (duplicates,
grayscale pages, broken files, odd colour modes, malformed metadata lines). The
face drawings are simple anime-style line art that the anime-face LBP cascade
actually detects, so every stage has real work to do. `truth.tsv` says what each
post is, for tests only: the workflow never reads it.

Everything is drawn from one seeded generator and written with fixed encoder
settings, so a rerun writes identical bytes and a content-keyed workflow stays
up to date.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

from ganflow.tables import atomic_open, write_tsv

#: truth.tsv: file is relative to the root (where it would be, for `missing`), dup_of the
#: duplicated id, box the drawn face as "x,y,w,h", metadata the JSON-lines file of the post.
TRUTH_COLUMNS = ("id", "kind", "file", "dup_of", "box", "metadata", "note")

#: What a post can be; every kind is present in every mirror.
KINDS = ("face", "grayscale", "monochrome", "exact_dup", "near_dup", "tiny", "truncated",
         "not_image", "cmyk", "png16", "palette", "rating_q", "rating_e", "missing", "malformed")

HAIR = {"black_hair": (40, 36, 48), "brown_hair": (125, 80, 50), "blonde_hair": (246, 214, 120),
        "red_hair": (205, 55, 50), "blue_hair": (70, 110, 210), "pink_hair": (246, 150, 186),
        "purple_hair": (145, 95, 195), "green_hair": (85, 170, 100), "silver_hair": (205, 208, 220),
        "orange_hair": (242, 145, 62), "aqua_hair": (95, 200, 212)}
EYES = {"blue_eyes": (45, 95, 220), "red_eyes": (205, 35, 45), "green_eyes": (40, 150, 70),
        "brown_eyes": (135, 82, 40), "purple_eyes": (135, 60, 185), "yellow_eyes": (232, 182, 30),
        "aqua_eyes": (35, 180, 190), "pink_eyes": (232, 100, 160)}
SKIN = ((255, 230, 214), (252, 222, 202), (247, 212, 188), (255, 237, 228), (236, 196, 168))
CLOTHES = ((250, 250, 252), (40, 45, 70), (200, 40, 60), (60, 90, 160), (230, 200, 220), (90, 60, 50))

_SS = 2  # supersampling factor: draw at 2x, then downsample for anti-aliased lines
_BOX_TOP = 0.1  # the cascade's box starts at the bangs, 0.1 face heights below the drawing's origin
_BODY = 1.55  # the drawn body reaches this many face heights below the box even when tilted


@dataclass(frozen=True)
class Drawing:
    """A picture and where its face is (x, y, w, h in pixels), with the tags it earns."""

    image: Image.Image
    box: tuple[int, int, int, int]
    tags: tuple[str, ...]


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    """Darker (factor < 1) or lighter (factor > 1, towards white) version of a colour."""
    if factor <= 1:
        return tuple(int(c * factor) for c in rgb)
    t = factor - 1
    return tuple(int(c + (255 - c) * t) for c in rgb)


def _curve(p0, p1, p2, n: int = 8) -> list[tuple[float, float]]:
    """Points of a quadratic Bezier curve, so hair strands bend instead of zigzagging."""
    t = np.linspace(0, 1, n)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t ** 2 * np.array(p2)
    return [tuple(p) for p in pts]


def draw_character(rng: np.random.Generator, size: int) -> tuple[Image.Image, tuple[int, int], list[str]]:
    """Draw an anime-style head and shoulders on a transparent layer.

    Returns the RGBA layer, the top-left of the nominal face box (a `size` square that
    matches where the LBP cascade reports the face) inside the layer, and the tags the
    drawing earns. Measured against the cascade: dark outlines (above all round the side
    locks framing the cheeks) and heavy upper lashes are what make it fire; the same
    drawing with thin outlines is found about a third less often.
    """
    hair_tag = str(rng.choice(list(HAIR)))
    eye_tag = str(rng.choice(list(EYES)))
    hair = _jitter(rng, HAIR[hair_tag], 12)
    eye = _jitter(rng, EYES[eye_tag], 15)
    skin = _jitter(rng, SKIN[rng.integers(len(SKIN))], 5)
    clothes = _jitter(rng, CLOTHES[rng.integers(len(CLOTHES))], 10)
    line = _shade(hair, 0.25) if rng.random() < 0.5 else (35, 25, 30)
    long_hair = rng.random() < 0.7
    blush = rng.random() < 0.5
    open_mouth = rng.random() < 0.35
    ribbon = rng.random() < 0.3

    u = size * _SS
    x0, y0, x1, y1 = -0.6, -0.45, 1.6, 1.9
    layer = Image.new("RGBA", (int((x1 - x0) * u), int((y1 - y0) * u)), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)

    def width(w: float) -> int:
        return max(1, round(w * u))

    thin, medium, heavy = width(0.012), width(0.026), width(0.034)

    def P(x: float, y: float) -> tuple[float, float]:
        return ((x - x0) * u, (y - y0) * u)

    def poly(points, fill, outline=line, w=medium):
        d.polygon([P(x, y) for x, y in points], fill=fill, outline=outline, width=w)

    def ellipse(cx, cy, rx, ry, fill, outline=None, w=medium):
        d.ellipse([P(cx - rx, cy - ry), P(cx + rx, cy + ry)], fill=fill, outline=outline, width=w)

    # Head geometry, in units of the face box.
    fw = rng.uniform(0.33, 0.37)  # half width of the face at the cheeks
    cheek_y = 0.49
    chin = rng.uniform(0.98, 1.03)
    eye_y = rng.uniform(0.53, 0.57)
    eye_dx = rng.uniform(0.17, 0.20)
    ew = rng.uniform(0.13, 0.155) / 2
    eh = rng.uniform(0.15, 0.19) / 2
    top = cheek_y - 0.58  # crown of the head

    # Hair behind the head: down the back when long, a bob to the chin when short.
    length = rng.uniform(1.3, 1.75) if long_hair else rng.uniform(0.85, 1.0)
    spread = rng.uniform(0.62, 0.72)
    back = [(0.5 + spread * math.cos(a), cheek_y - 0.62 * math.sin(a)) for a in np.linspace(0, math.pi, 20)]
    back += _curve((0.5 - spread, cheek_y), (0.5 - spread - 0.05, length * 0.8), (0.5 - spread + 0.02, length))
    n_tips = int(rng.integers(4, 7))
    for i, x in enumerate(np.linspace(0.5 - spread + 0.02, 0.5 + spread - 0.02, n_tips * 2 + 1)[1:-1]):
        back.append((x, length - (0.0 if i % 2 else 0.12)))
    back += _curve((0.5 + spread - 0.02, length), (0.5 + spread + 0.05, length * 0.8), (0.5 + spread, cheek_y))
    poly(back, fill=_shade(hair, 0.85))

    # Neck and shoulders.
    poly([(0.40, 0.85), (0.40, 1.25), (0.60, 1.25), (0.60, 0.85)], fill=skin, w=thin)
    poly(_curve((0.40, 0.9), (0.5, 1.05), (0.60, 0.9)) + [(0.60, 0.86), (0.40, 0.86)],
         fill=_shade(skin, 0.85), outline=None)
    poly([(-0.35, 2.0), (-0.25, 1.45), (0.05, 1.22), (0.38, 1.18), (0.5, 1.32), (0.62, 1.18),
          (0.95, 1.22), (1.25, 1.45), (1.35, 2.0)], fill=clothes)
    poly([(0.36, 1.18), (0.5, 1.4), (0.64, 1.18), (0.5, 1.3)], fill=_shade(clothes, 0.75), w=thin)

    # Face: round forehead, cheeks tapering to a pointed chin.
    pts = [(0.5 + fw * math.cos(a), cheek_y - 0.5 * math.sin(a)) for a in np.linspace(0, math.pi, 24)]
    pts += [(0.5 - fw * (1 - t ** 1.8), cheek_y + t * (chin - cheek_y)) for t in np.linspace(0, 1, 16)]
    pts += [(0.5 + fw * (1 - t ** 1.8), cheek_y + t * (chin - cheek_y)) for t in np.linspace(1, 0, 16)[1:]]
    poly(pts, fill=skin)

    if blush:
        for side in (-1, 1):
            ellipse(0.5 + side * (eye_dx + 0.03), eye_y + eh + 0.055, 0.065, 0.022, fill=_shade((250, 150, 150), 1.1))

    # Eyes: white, dark iris with a light lower half, pupil, highlights, heavy upper lash.
    for side in (-1, 1):
        ex, ey = 0.5 + side * eye_dx, eye_y
        ellipse(ex, ey, ew, eh, fill=(255, 255, 255))
        ix, iy, irx, iry = ex - side * 0.008, ey + eh * 0.08, ew * 0.74, eh * 0.9
        ellipse(ix, iy, irx, iry, fill=_shade(eye, 0.45))
        ellipse(ix, iy + iry * 0.3, irx * 0.75, iry * 0.6, fill=eye)
        ellipse(ix, iy + iry * 0.55, irx * 0.5, iry * 0.3, fill=_shade(eye, 1.35))
        ellipse(ix, iy - iry * 0.05, irx * 0.42, iry * 0.48, fill=(20, 15, 25))
        ellipse(ix + side * irx * 0.35, iy - iry * 0.4, irx * 0.3, irx * 0.3, fill=(255, 255, 255))
        ellipse(ix - side * irx * 0.35, iy + iry * 0.4, irx * 0.13, irx * 0.13, fill=(255, 255, 255))
        lash_top = [(ex + side * ew * 1.25 * math.cos(a), ey - eh * 1.05 * math.sin(a))
                    for a in np.linspace(0.15, math.pi - 0.1, 14)]
        lash_bot = [(ex + side * ew * 1.05 * math.cos(a), ey - eh * (1.05 - 0.5 * math.sin(a)) * math.sin(a))
                    for a in np.linspace(math.pi - 0.1, 0.0, 14)]
        poly(lash_top + [(ex + side * ew * 1.45, ey - eh * 0.1)] + lash_bot, fill=(25, 18, 22), w=1)
        d.arc([P(ex - ew * 0.7, ey - eh * 1.2), P(ex + ew * 0.7, ey + eh * 1.05)], 60, 120, fill=line, width=thin)
        brow_y = ey - eh - rng.uniform(0.07, 0.10)
        d.line([P(ex - side * ew * 0.8, brow_y + 0.01), P(ex, brow_y - 0.01),
                P(ex + side * ew * 0.9, brow_y + 0.015)], fill=_shade(hair, 0.4), width=width(0.03), joint="curve")

    # Nose and mouth.
    d.line([P(0.51, 0.76), P(0.5, 0.785)], fill=_shade(skin, 0.6), width=thin)
    mouth_y = (0.785 + chin) / 2
    if open_mouth:
        poly([(0.45, mouth_y - 0.02), (0.55, mouth_y - 0.02), (0.53, mouth_y + 0.02), (0.5, mouth_y + 0.03),
              (0.47, mouth_y + 0.02)], fill=(190, 70, 80), w=thin)
    else:
        d.arc([P(0.45, mouth_y - 0.05), P(0.55, mouth_y + 0.01)], 20, 160, fill=line, width=thin)

    # Bangs: a hair cap whose lower edge is a row of pointed strands over the forehead.
    n = int(rng.integers(5, 9))
    tip_limit = eye_y - eh + 0.02
    xs = np.linspace(0.5 + fw + 0.1, 0.5 - fw - 0.1, n + 1)
    edge = [(0.5 + spread * 0.95, cheek_y)]
    for i in range(n):
        a, b = xs[i], xs[i + 1]
        tip = ((a + b) / 2 + rng.uniform(-0.03, 0.03), min(tip_limit, rng.uniform(0.38, 0.5)))
        edge += _curve((a, rng.uniform(0.16, 0.26)), ((a + tip[0]) / 2, tip[1] - 0.1), tip, 4)
        edge += _curve(tip, ((b + tip[0]) / 2, tip[1] - 0.1), (b, rng.uniform(0.16, 0.26)), 4)[1:]
    edge.append((0.5 - spread * 0.95, cheek_y))
    cap = [(0.5 + spread * 0.95 * math.cos(a), cheek_y - 0.6 * math.sin(a)) for a in np.linspace(math.pi, 0, 20)]
    poly(cap + edge, fill=hair)
    for sx in np.linspace(0.25, 0.75, int(rng.integers(2, 5))):  # a few strand lines for a drawn look
        bend = (sx - 0.5) * 0.3
        d.line([P(x, y) for x, y in _curve((sx, top + 0.12), (sx + bend, 0.1), (sx + bend * 1.5, 0.26))],
               fill=_shade(hair, 0.6), width=thin)
    d.arc([P(0.5 - spread * 0.8, top + 0.05), P(0.5 + spread * 0.8, 0.45)], 205, 335, fill=_shade(hair, 1.45),
          width=width(0.03))

    # Side locks framing the cheeks: the dark outlines here matter most to the detector.
    lock_end = rng.uniform(0.95, 1.1) if long_hair else rng.uniform(0.85, 0.95)
    for side in (-1, 1):
        sx = 0.5 + side * (fw + 0.02)
        outer = _curve((sx + side * 0.1, 0.28), (sx + side * 0.1, 0.7), (sx - side * 0.03, lock_end))
        inner = _curve((sx - side * 0.03, lock_end), (sx - side * 0.09, 0.65), (sx - side * 0.055, 0.25))
        poly(outer + inner, fill=hair, w=heavy)
    if ribbon:
        bow = _jitter(rng, (220, 40, 60), 20)
        bx = 0.5 + rng.choice([-1, 1]) * spread * 0.75
        for side in (-1, 1):
            poly([(bx, 0.0), (bx + side * 0.14, -0.08), (bx + side * 0.14, 0.08)], fill=bow)
        ellipse(bx, 0.0, 0.03, 0.03, fill=_shade(bow, 0.8), outline=line)

    tags = ["1girl", "solo", "looking_at_viewer", "bangs", hair_tag, eye_tag,
            "long_hair" if long_hair else "short_hair", "portrait" if rng.random() < 0.5 else "upper_body"]
    if blush:
        tags.append("blush")
    if ribbon:
        tags += ["hair_ribbon", "ribbon"]
    tags.append("open_mouth" if open_mouth else "smile")
    return layer, (round(-x0 * size), round((_BOX_TOP - y0) * size)), tags


def _background(rng: np.random.Generator, w: int, h: int) -> tuple[Image.Image, list[str]]:
    """White, flat or gradient backdrop with a few soft dots, as simple illustrations have.

    Varied backdrops matter to the detector: on a single pale backdrop close to the skin
    tone the cascade found a third fewer faces than on these.
    """
    style = rng.choice(["white", "flat", "gradient"], p=[0.25, 0.35, 0.4])
    if style == "white":
        top = bottom = _jitter(rng, (250, 250, 250), 5)
        tags = ["simple_background", "white_background"]
    elif style == "flat":
        top = bottom = tuple(int(c) for c in rng.integers(120, 256, 3))
        tags = ["simple_background"]
    else:
        top, bottom = (tuple(int(c) for c in rng.integers(100, 256, 3)) for _ in range(2))
        tags = ["gradient_background"]
    t = np.linspace(0, 1, h)[:, None, None]
    arr = (1 - t) * np.array(top) + t * np.array(bottom)
    img = Image.fromarray(np.broadcast_to(arr, (h, w, 3)).astype(np.uint8))
    if style != "white":
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(0, 8))):
            r = rng.uniform(4, 25)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_shade(tuple(top), 1.25))
    return img, tags


def _place_character(rng: np.random.Generator, img: Image.Image,
                     size: int) -> tuple[tuple[int, int, int, int], list[str]]:
    """Paste a slightly tilted character onto `img` (in place); return its face box and tags.

    The face box lands anywhere it fits horizontally, and low enough that the drawn
    shoulders reach the bottom edge (a bust, not a floating torso), so it is rarely centred.
    """
    w, h = img.size
    layer, (ox, oy), tags = draw_character(rng, size)
    layer = layer.reduce(_SS).rotate(float(rng.uniform(-8, 8)), resample=Image.Resampling.BILINEAR,
                                     center=(ox + size / 2, oy + size / 2))
    x = int(rng.integers(0, w - size + 1))
    y = int(rng.integers(max(0, h - int(_BODY * size)), h - size + 1))
    img.paste(layer, (x - ox, y - oy), layer)
    return (x, y, size, size), tags


def draw_picture(rng: np.random.Generator, canvas: tuple[int, int], face: tuple[int, int]) -> Drawing:
    """A colour illustration: one character on a backdrop.

    `canvas` and `face` are (smallest, largest) side lengths in pixels; the canvas is
    enlarged where needed so that it always holds the whole face box.
    """
    size = int(rng.integers(face[0], face[1] + 1))
    lo = max(canvas[0], size + 16)
    w, h = (int(rng.integers(lo, max(lo, canvas[1]) + 1)) for _ in range(2))
    img, bg_tags = _background(rng, w, h)
    box, tags = _place_character(rng, img, size)
    return Drawing(img, box, tuple(tags + bg_tags))


def draw_manga_page(rng: np.random.Generator, canvas: tuple[int, int], face: tuple[int, int]) -> Drawing:
    """A grayscale comic page: a panel with a character over screentone, a panel of speed lines.

    Grayscale art is common on boorus and useless for a colour GAN; the face on it is
    still detectable, so the cleaning stage (not the detector) has to reject it.
    """
    w = int(rng.integers(canvas[0], canvas[1] + 1))
    h = int(rng.integers(max(w, canvas[0]), max(w, canvas[1]) + 1))
    page = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(page)
    m = max(4, w // 30)
    split = int(h * rng.uniform(0.62, 0.75))
    top_panel = (m, m, w - m, split - m // 2)
    bottom_panel = (m, split + m // 2, w - m, h - m)
    pw, ph = top_panel[2] - top_panel[0], top_panel[3] - top_panel[1]
    panel = Image.new("RGB", (pw, ph), (255, 255, 255))
    dots = ImageDraw.Draw(panel)
    step = int(rng.integers(5, 8))
    tone = int(rng.integers(150, 210))
    for yy in range(0, ph, step):  # screentone: a dot grid, offset every other row
        for xx in range((yy // step % 2) * step // 2, pw, step):
            dots.ellipse([xx, yy, xx + 2, yy + 2], fill=(tone, tone, tone))
    size = min(int(rng.integers(face[0], face[1] + 1)), pw - 8, ph - 8)
    (x, y, s, _), tags = _place_character(rng, panel, size)
    page.paste(panel, top_panel[:2])
    bw, bh = bottom_panel[2] - bottom_panel[0], bottom_panel[3] - bottom_panel[1]
    lines = Image.new("RGB", (bw, bh), (255, 255, 255))
    cx, cy, r = rng.uniform(0, bw), rng.uniform(0, bh), bw + bh
    for a in rng.uniform(0, 2 * math.pi, 40):  # speed lines towards a focus point
        ImageDraw.Draw(lines).line([(cx + 0.2 * r * math.cos(a), cy + 0.2 * r * math.sin(a)),
                                    (cx + r * math.cos(a), cy + r * math.sin(a))], fill=(0, 0, 0), width=1)
    page.paste(lines, bottom_panel[:2])
    for box in (top_panel, bottom_panel):
        d.rectangle(box, outline=(0, 0, 0), width=2)
    bx = rng.uniform(w * 0.25, w * 0.75)
    by = rng.uniform(bottom_panel[1] + 18, max(bottom_panel[1] + 19, bottom_panel[3] - 18))
    d.ellipse([bx - 40, by - 16, bx + 40, by + 16], fill=(255, 255, 255), outline=(0, 0, 0), width=2)
    for i in range(2):  # "text" in the speech bubble
        d.line([(bx - 24 + 6 * i, by - 5 + 10 * i), (bx + 24 - 6 * i, by - 5 + 10 * i)], fill=(60, 60, 60), width=3)
    keep = [t for t in tags if t in ("1girl", "solo", "bangs", "long_hair", "short_hair", "smile",
                                     "open_mouth", "looking_at_viewer", "hair_ribbon", "ribbon")]
    return Drawing(page.convert("L"), (x + top_panel[0], y + top_panel[1], s, s),
                   tuple(keep + ["comic", "greyscale", "monochrome", "speech_bubble"]))


_NOT_IMAGE = (b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
              b"<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>\n")
_META_TAGS = ("commentary_request", "lowres")
_FILES = ("posts.json", "posts-2021.json")


@dataclass
class _Post:
    """One post of the mirror: its metadata, its file bytes (None: missing) and its truth."""

    id: int
    kind: str
    ext: str
    rating: str
    tags: list[str]
    size: tuple[int, int]
    data: bytes | None = None
    dup_of: int | None = None
    box: tuple[int, int, int, int] | None = None
    note: str = ""


def _encode(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _jpeg(img: Image.Image, quality: int = 92) -> bytes:
    return _encode(img, "JPEG", quality=quality)


def _unique_ids(rng: np.random.Generator, n: int) -> list[int]:
    """Distinct ids below 5 million, so posts scatter over Danbooru's 1000 buckets."""
    seen: set[int] = set()
    while len(seen) < n:
        seen.add(int(rng.integers(1, 5_000_000)))
    return [int(v) for v in rng.permutation(sorted(seen))]


def _credits(rng: np.random.Generator) -> list[str]:
    """Artist, copyright and sometimes meta tags, so tag categories other than general exist."""
    tags = [f"demo_artist_{int(rng.integers(12))}", "original"]
    return (tags + ["commentary_request"]) if rng.random() < 0.3 else tags


def _random_md5(rng: np.random.Generator) -> str:
    """The md5 a post without a file still advertises."""
    return bytes(rng.integers(0, 256, 16, dtype=np.uint8)).hex()


def _picture_post(rng: np.random.Generator, kind: str, ids: Iterator[int], canvas: tuple[int, int],
                  face: tuple[int, int]) -> tuple[_Post, Drawing]:
    """A post whose file is a colour face picture, encoded the way `kind` calls for."""
    dr = draw_picture(rng, canvas, face)
    img, tags = dr.image, list(dr.tags) + _credits(rng)
    post = _Post(next(ids), kind, "jpg", "s", tags, img.size, box=dr.box)
    if kind == "face":
        if rng.random() < 0.15:
            post.ext, post.data = "png", _encode(img, "PNG")
        else:
            post.data = _jpeg(img)
    elif kind in ("rating_q", "rating_e"):
        post.rating = kind[-1]
        post.tags += ["swimsuit", "cleavage"] if kind == "rating_q" else ["nude"]
        post.data = _jpeg(img)
    elif kind == "tiny":
        x, y, s, _ = dr.box
        post.data = _jpeg(img.crop((x, y, x + s, y + s)).resize((24, 24), Image.Resampling.LANCZOS))
        post.size, post.box, post.tags = (24, 24), (0, 0, 24, 24), tags + ["lowres"]
    elif kind == "truncated":
        data = _jpeg(img)
        post.data, post.box, post.note = data[: len(data) // 2], None, "JPEG cut in half"
    elif kind == "cmyk":
        post.data = _jpeg(img.convert("CMYK"))
    elif kind == "png16":
        gray = np.asarray(img.convert("L"), dtype=np.uint16) * 257
        post.ext, post.data = "png", _encode(Image.fromarray(gray), "PNG")
        post.note = "16-bit grayscale (Pillow cannot write 48-bit RGB)"
    elif kind == "palette":
        post.ext, post.data = "png", _encode(img.quantize(colors=64), "PNG")
    else:
        raise ValueError(f"no picture recipe for kind {kind!r}")
    return post, dr


def _make_posts(rng: np.random.Generator, n_faces: int, canvas: tuple[int, int],
                face: tuple[int, int]) -> tuple[list[_Post], list[tuple[str, str, str, str]]]:
    """Every post of the mirror, plus the malformed lines (see `_malformed`)."""
    k = max(1, n_faces // 60)
    singles = ("tiny", "truncated", "not_image", "cmyk", "png16", "palette", "rating_q", "rating_e", "missing")
    ids = iter(_unique_ids(rng, n_faces + 4 * k + len(singles) + 5))
    faces = [_picture_post(rng, "face", ids, canvas, face) for _ in range(n_faces)]
    posts = [p for p, _ in faces]
    for kind in ("tiny", "truncated", "cmyk", "png16", "palette", "rating_q", "rating_e"):
        posts.append(_picture_post(rng, kind, ids, canvas, face)[0])
    for _ in range(k):
        src, _ = faces[int(rng.integers(n_faces))]
        posts.append(_Post(next(ids), "exact_dup", src.ext, src.rating, list(src.tags), src.size,
                           data=src.data, dup_of=src.id, box=src.box))
        src, dr = faces[int(rng.integers(n_faces))]
        f = 1 + rng.choice([-1, 1]) * rng.uniform(0.05, 0.12)
        img = dr.image.resize((round(dr.image.width * f), round(dr.image.height * f)), Image.Resampling.LANCZOS)
        quality = int(rng.choice([70, 75, 80, 85]))
        posts.append(_Post(next(ids), "near_dup", "jpg", src.rating, list(src.tags), img.size,
                           data=_jpeg(img, quality), dup_of=src.id, box=tuple(round(v * f) for v in dr.box),
                           note=f"scaled {f:.3f}, JPEG quality {quality}"))
        page = draw_manga_page(rng, canvas, face)
        posts.append(_Post(next(ids), "grayscale", "jpg", "s", list(page.tags) + _credits(rng), page.image.size,
                           data=_jpeg(page.image, 90), box=page.box))
        w, h = (int(v) for v in rng.integers(canvas[0], canvas[1] + 1, 2))
        flat = np.broadcast_to(rng.integers(0, 256, 3), (h, w, 3)).astype(np.int16)
        if rng.random() < 0.5:  # near-flat: a little sensor-like noise
            flat = flat + rng.integers(-3, 4, (h, w, 3))
        img = Image.fromarray(np.clip(flat, 0, 255).astype(np.uint8))
        posts.append(_Post(next(ids), "monochrome", "jpg", "s",
                           ["no_humans", "simple_background", "abstract"] + _credits(rng), img.size, data=_jpeg(img)))
    posts.append(_Post(next(ids), "not_image", "jpg", "s", ["no_humans", "text_only_page"] + _credits(rng), (640, 480),
                       data=_NOT_IMAGE, note="an HTML error page saved under a .jpg name"))
    hair, eyes = str(rng.choice(list(HAIR))), str(rng.choice(list(EYES)))
    posts.append(_Post(next(ids), "missing", "jpg", "s", ["1girl", "solo", hair, eyes] + _credits(rng), (600, 800),
                       note="metadata only, the file was never downloaded"))
    return posts, _malformed(rng, ids)


def _malformed(rng: np.random.Generator, ids: Iterator[int]) -> list[tuple[str, str, str, str]]:
    """Lines a real metadata dump contains: cut-off JSON, odd ids, paths in file_ext.

    Returned as (metadata file, line, id as written, what is wrong).
    """
    out = []
    for name in _FILES:
        post = _Post(next(ids), "malformed", "jpg", "s", ["1girl", "solo"], (500, 700))
        line = _record(rng, post, name, _random_md5(rng), 123_456, _created_at(name, 1, 2))
        out.append((name, line[: len(line) * 3 // 5], "", "broken JSON (line cut short)"))
    n = next(ids)
    bad_id = f"{n // 1000}x{n % 1000:03d}"
    post = _Post(n, "malformed", "jpg", "s", ["1girl", "solo"], (500, 700))
    record = json.loads(_record(rng, post, _FILES[0], _random_md5(rng), 123_456, _created_at(_FILES[0], 1, 2)))
    record["id"] = bad_id
    out.append((_FILES[0], json.dumps(record), bad_id, "non-integer id"))
    for name, ext in zip(_FILES, ("../../etc/passwd", "jpg/../../x")):
        post = _Post(next(ids), "malformed", ext, "s", ["1girl", "solo"], (500, 700))
        out.append((name, _record(rng, post, name, _random_md5(rng), 123_456, _created_at(name, 1, 2)), str(post.id),
                    f"file_ext {ext!r} escapes the mirror"))
    return out


def _tag_id(name: str) -> int:
    """A stable tag id (the same tag always gets the same id, whatever the seed)."""
    return zlib.crc32(name.encode()) % 900_000 + 1


def _category(name: str) -> int:
    """Danbooru's tag categories: 0 general, 1 artist, 3 copyright, 5 meta."""
    if name.startswith("demo_artist_"):
        return 1
    if name == "original":
        return 3
    return 5 if name in _META_TAGS else 0


def _record(rng: np.random.Generator, post: _Post, file: str, md5: str, file_size: int, created: str) -> str:
    """One JSON line: strings everywhere and a tag list (Danbooru2018-2020), or typed
    fields and space-separated tag strings (Danbooru2021)."""
    score = int(rng.integers(-2, 60))
    uploader = int(rng.integers(1, 600_000))
    tags = sorted(set(post.tags))
    w, h = post.size
    if file == _FILES[0]:
        return json.dumps({
            "id": str(post.id), "created_at": created, "uploader_id": str(uploader), "score": str(score),
            "source": "", "md5": md5, "last_commented_at": "1970-01-01 00:00:00 UTC", "rating": post.rating,
            "image_width": str(w), "image_height": str(h), "is_note_locked": False, "file_ext": post.ext,
            "last_noted_at": "1970-01-01 00:00:00 UTC", "is_rating_locked": False,
            "parent_id": str(post.dup_of or 0) if post.kind == "near_dup" else "0", "has_children": False,
            "approver_id": "0", "file_size": str(file_size), "is_status_locked": False,
            "up_score": str(max(score, 0)), "down_score": str(min(score, 0)), "is_pending": False,
            "is_flagged": False, "is_deleted": False, "updated_at": created, "is_banned": False, "pixiv_id": "0",
            "tags": [{"id": str(_tag_id(t)), "name": t, "category": str(_category(t))} for t in tags],
            "pools": [], "favs": []})
    by_cat = {c: " ".join(t for t in tags if _category(t) == c) for c in (0, 1, 3, 5)}
    return json.dumps({
        "id": post.id, "created_at": created, "uploader_id": uploader, "score": score, "source": "",
        "md5": md5, "rating": post.rating, "image_width": w, "image_height": h, "tag_string": " ".join(tags),
        "fav_count": max(score, 0), "file_ext": post.ext, "parent_id": post.dup_of if post.kind == "near_dup" else None,
        "has_children": False, "file_size": file_size, "up_score": max(score, 0), "down_score": min(score, 0),
        "is_pending": False, "is_flagged": False, "is_deleted": False, "is_banned": False, "pixiv_id": None,
        "tag_count": len(tags), "tag_count_general": len(by_cat[0].split()), "tag_string_general": by_cat[0],
        "tag_string_artist": by_cat[1], "tag_string_copyright": by_cat[3], "tag_string_character": "",
        "tag_string_meta": by_cat[5], "updated_at": created})


def _created_at(file: str, rank: int, n: int) -> str:
    """Creation times that grow with the id, as Danbooru's do: 2006-2020, then 2021."""
    if file == _FILES[0]:
        start, end, fmt = datetime(2006, 1, 1), datetime(2020, 12, 31), "%Y-%m-%d %H:%M:%S UTC"
    else:
        start, end, fmt = datetime(2021, 1, 1), datetime(2021, 12, 31), "%Y-%m-%dT%H:%M:%S.000-05:00"
    return (start + (end - start) * ((rank + 0.5) / max(n, 1))).strftime(fmt)


def _write_bytes(path: Path, data: bytes) -> None:
    """Write atomically, and leave an identical file alone so its mtime does not change."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def _relpath(post: _Post) -> str:
    return f"original/{post.id % 1000:04d}/{post.id}.{post.ext}"


def make_mirror(root: str | Path, *, n_faces: int = 120, seed: int = 0,
                canvas: tuple[int, int] = (256, 448), face: tuple[int, int] = (90, 200)) -> dict[str, int]:
    """Write a small Danbooru-style mirror under `root` and return how many posts of each kind.

    `canvas` and `face` are (smallest, largest) side lengths in pixels of the pictures and
    of the face boxes in them. The same arguments always produce the same bytes, and a
    rerun leaves unchanged files untouched; files of an earlier mirror made with other
    arguments are not removed, so give each mirror its own root.
    """
    if n_faces < 1:
        raise ValueError(f"make_mirror: n_faces must be at least 1, got {n_faces}; ask for some faces.")
    for name, (lo, hi), least in (("canvas", canvas, 128), ("face", face, 24)):
        if not least <= lo <= hi:
            raise ValueError(f"make_mirror: {name}={(lo, hi)} must be a (smallest, largest) pair of sizes "
                             f"with the smallest at least {least} pixels.")
    root = Path(root)
    rng = np.random.default_rng(seed)
    posts, malformed = _make_posts(rng, n_faces, canvas, face)

    posts.sort(key=lambda p: p.id)
    n_new = len(posts) // 4  # the newest quarter is in the later (Danbooru2021) format
    lines: dict[str, list[str]] = {name: [] for name in _FILES}
    truth = []
    for rank, post in enumerate(posts):
        file = _FILES[rank >= len(posts) - n_new]
        sub_rank, n = (rank, len(posts) - n_new) if file == _FILES[0] else (rank - len(posts) + n_new, n_new)
        if post.data is None:
            md5, size = _random_md5(rng), int(rng.integers(50_000, 900_000))
        else:
            md5, size = hashlib.md5(post.data).hexdigest(), len(post.data)
            _write_bytes(root / _relpath(post), post.data)
        lines[file].append(_record(rng, post, file, md5, size, _created_at(file, sub_rank, n)))
        truth.append({"id": post.id, "kind": post.kind, "file": _relpath(post), "dup_of": post.dup_of or "",
                      "box": ",".join(map(str, post.box)) if post.box else "", "metadata": file, "note": post.note})
    for file, line, bad_id, note in malformed:
        at = int(rng.integers(0, len(lines[file]) + 1))
        lines[file].insert(at, line)
        truth.append({"id": bad_id, "kind": "malformed", "metadata": file, "note": note})
    for file in _FILES:
        _write_bytes(root / "metadata" / file, "".join(line + "\n" for line in lines[file]).encode())
    write_tsv(root / "truth.tsv", truth, TRUTH_COLUMNS)
    counts = {kind: 0 for kind in KINDS}
    for row in truth:
        counts[row["kind"]] += 1
    return counts
