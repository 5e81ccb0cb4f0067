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
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ganflow.tables import atomic_open, atomic_path, write_tsv

TRUTH_COLUMNS = ("id", "kind", "file", "dup_of", "box", "note")

#: Kinds that are one post each, in the order their share of the mirror is listed.
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

EXP: dict = {}
_SS = 2  # supersampling factor: draw at 2x, then downsample for anti-aliased lines


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
    drawing earns. The cascade keys on dark outlined hair locks framing the cheeks and
    on big eyes under heavy lashes; a flat drawing without them is almost never found.
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
    ribbon = rng.random() < EXP.get('ribbon', 0.3)

    u = size * _SS
    x0, y0, x1, y1 = -0.6, -0.45, 1.6, 1.9
    layer = Image.new("RGBA", (int((x1 - x0) * u), int((y1 - y0) * u)), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)

    def width(w: float) -> int:
        return max(1, round(w * u))

    thin, medium, heavy = width(0.012), width(0.018 * EXP.get('medium', 1)), width(0.048 * EXP.get('heavy', 1))

    def P(x: float, y: float) -> tuple[float, float]:
        return ((x - x0) * u, (y - y0) * u)

    def poly(points, fill, outline=line, w=medium):
        d.polygon([P(x, y) for x, y in points], fill=fill, outline=outline, width=w)

    def ellipse(cx, cy, rx, ry, fill, outline=None, w=medium):
        d.ellipse([P(cx - rx, cy - ry), P(cx + rx, cy + ry)], fill=fill, outline=outline, width=w)

    # Head geometry, in units of the face box.
    fw = rng.uniform(0.33, 0.37) * EXP.get('fw', 1)           # half width of the face at the cheeks
    cheek_y = 0.52 + EXP.get('cheek', 0)
    chin = rng.uniform(1.0, 1.05) + EXP.get('chin', 0)
    eye_y = rng.uniform(0.6, 0.64) + EXP.get('eye_y', 0)
    eye_dx = rng.uniform(0.16, 0.19) * EXP.get('eye_dx', 1)
    ew = rng.uniform(0.13, 0.155) / 2 * EXP.get('ew', 1)
    eh = rng.uniform(0.145, 0.18) / 2 * EXP.get('eh', 1)
    top = cheek_y - 0.58                   # crown of the head

    # Hair behind the head: down the back when long, a bob to the chin when short.
    length = rng.uniform(1.3, 1.75) if long_hair else rng.uniform(0.85, 1.0)
    spread = rng.uniform(0.62, 0.72)
    back = [(0.5 + spread * math.cos(a), cheek_y - 0.62 * math.sin(a)) for a in np.linspace(0, math.pi, 20)]
    back += _curve((0.5 - spread, cheek_y), (0.5 - spread - 0.05, length * 0.8), (0.5 - spread + 0.02, length))
    n_tips = int(rng.integers(4, 7))
    for i, x in enumerate(np.linspace(0.5 - spread + 0.02, 0.5 + spread - 0.02, n_tips * 2 + 1)[1:-1]):
        back.append((x, length - (0.0 if i % 2 else 0.12)))
    back += _curve((0.5 + spread - 0.02, length), (0.5 + spread + 0.05, length * 0.8), (0.5 + spread, cheek_y))
    if EXP.get('oldback'):
        if long_hair:
            poly([(-0.12, 0.3), (-0.22, length * 0.7), (-0.18, length), (0.2, length - 0.1),
              (0.8, length - 0.1), (1.18, length), (1.22, length * 0.7), (1.12, 0.3)], fill=hair, w=width(0.035))
        ellipse(0.5, 0.38, 0.62, 0.56, fill=hair, outline=line, w=width(0.035))
    else:
        poly(back, fill=_shade(hair, EXP.get('backshade', 0.85)))

    # Neck and shoulders.
    poly([(0.40, 0.85), (0.40, 1.25), (0.60, 1.25), (0.60, 0.85)], fill=skin, w=thin)
    poly(_curve((0.40, 0.9), (0.5, 1.05), (0.60, 0.9)) + [(0.60, 0.86), (0.40, 0.86)],
         fill=_shade(skin, 0.85), outline=None)
    by = EXP.get('body', 0)
    poly([(x, y + (by if y < 1.9 else 0)) for x, y in [(-0.35, 2.0), (-0.25, 1.45), (0.05, 1.22), (0.38, 1.18), (0.5, 1.32), (0.62, 1.18),
          (0.95, 1.22), (1.25, 1.45), (1.35, 2.0)]], fill=clothes)
    poly([(x, y + by) for x, y in [(0.36, 1.18), (0.5, 1.4), (0.64, 1.18), (0.5, 1.3)]], fill=_shade(clothes, 0.75), w=thin)

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
        lash = EXP.get('lash', 0.35)
        lash_top = [(ex + side * ew * 1.25 * math.cos(a), ey - eh * 1.05 * math.sin(a))
                    for a in np.linspace(0.15, math.pi - 0.1, 14)]
        lash_bot = [(ex + side * ew * 1.05 * math.cos(a), ey - eh * (1.05 - lash * math.sin(a)) * math.sin(a))
                    for a in np.linspace(math.pi - 0.1, 0.0, 14)]
        poly(lash_top + [(ex + side * ew * 1.45, ey - eh * 0.1)] + lash_bot, fill=(25, 18, 22), w=1)
        d.arc([P(ex - ew * 0.7, ey - eh * 1.2), P(ex + ew * 0.7, ey + eh * 1.05)], 60, 120, fill=line, width=thin)
        brow_y = ey - eh - rng.uniform(0.07, 0.10)
        d.line([P(ex - side * ew * 0.8, brow_y + 0.01), P(ex, brow_y - 0.01),
                P(ex + side * ew * 0.9, brow_y + 0.015)], fill=_shade(hair, 0.4), width=width(EXP.get('brow', 0.012)), joint="curve")

    # Nose and mouth.
    d.line([P(0.51, 0.76), P(0.5, 0.785)], fill=_shade(skin, 0.6), width=thin)
    mouth_y = (0.785 + chin) / 2 + EXP.get('mouth', 0)
    if open_mouth:
        poly([(0.45, mouth_y - 0.02), (0.55, mouth_y - 0.02), (0.53, mouth_y + 0.02), (0.5, mouth_y + 0.03),
              (0.47, mouth_y + 0.02)], fill=(190, 70, 80), w=thin)
    else:
        d.arc([P(0.45, mouth_y - 0.05), P(0.55, mouth_y + 0.01)], 20, 160, fill=line, width=thin)

    # Bangs: a hair cap whose lower edge is a row of pointed strands over the forehead.
    if EXP.get('oldbangs'):
        n = int(rng.integers(5, 9))
        top_of_eye = eye_y - eh
        edge = [(1.08, 0.55)]
        xs = np.linspace(0.98, 0.02, n + 1)
        for i in range(n):
            a, b = xs[i], xs[i + 1]
            tip = min(top_of_eye + 0.03, rng.uniform(0.36, 0.48))
            edge += [(a, rng.uniform(0.16, 0.26)), ((a + b) / 2 + rng.uniform(-0.03, 0.03), tip)]
        edge += [(0.02, rng.uniform(0.18, 0.26)), (-0.08, 0.55)]
        cap = [(0.5 + 0.6 * math.cos(a), 0.4 - 0.52 * math.sin(a)) for a in np.linspace(math.pi, 0, 20)]
        poly(cap[:1] + [(-0.1, 0.55)] + edge[::-1] + [(1.1, 0.55)] + cap[::-1][:1] + cap[::-1], fill=hair, w=width(EXP['oldbangs']))
    else:
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
    for _ in range(int(rng.integers(2, 5))):  # a few strand lines for a drawn look
        sx = rng.uniform(0.2, 0.8)
        d.line(_curve_px(P, (sx, top + 0.12), (sx + rng.uniform(-0.08, 0.08), 0.1), (sx + rng.uniform(-0.05, 0.05), 0.28)),
               fill=_shade(hair, 0.6), width=thin)
    d.arc([P(0.5 - spread * 0.8, top + 0.05), P(0.5 + spread * 0.8, 0.45)], 205, 335, fill=_shade(hair, 1.45),
          width=width(0.03))

    # Side locks framing the cheeks: the dark outlines here matter most to the detector.
    lock_end = rng.uniform(0.95, 1.1) if long_hair else rng.uniform(0.85, 0.95)
    for side in (-1, 1):
        sx = 0.5 + side * (fw + 0.02)
        wo, wi = EXP.get('wo', 0.1), EXP.get('wi', 0.1)
        if EXP.get('oldlocks'):
            poly([(sx - side * 0.06, 0.25), (sx - side * 0.1, 0.55), (sx - side * 0.03, 1.0),
                  (sx + side * 0.06, 0.7), (sx + side * 0.1, 0.3)], fill=hair, w=heavy)
            continue
        outer = _curve((sx + side * wo, 0.28), (sx + side * wo, 0.7), (sx - side * 0.03, lock_end))
        inner = _curve((sx - side * 0.03, lock_end), (sx - side * wi, 0.65), (sx - side * wi * 0.6, 0.25))
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
    return layer, (int(-x0 * size), int(-y0 * size)), tags


def _curve_px(P, p0, p1, p2) -> list[tuple[float, float]]:
    return [P(x, y) for x, y in _curve(p0, p1, p2)]
