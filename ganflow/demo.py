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


def draw_character(rng: np.random.Generator, size: int) -> tuple[Image.Image, tuple[int, int], list[str]]:
    """Draw an anime-style head and shoulders on a transparent layer.

    Returns the RGBA layer, the top-left of the nominal face box (a `size` square from
    the hair over the forehead to the chin, about what the cascade reports) inside the
    layer, and the tags the drawing earns. Black outlines, big dark-lashed eyes and
    bangs are what the LBP cascade keys on; flat shapes without them are not detected.
    """
    hair_tag = str(rng.choice(list(HAIR)))
    eye_tag = str(rng.choice(list(EYES)))
    hair = _jitter(rng, HAIR[hair_tag], 12)
    eye = _jitter(rng, EYES[eye_tag], 15)
    skin = _jitter(rng, SKIN[rng.integers(len(SKIN))], 5)
    clothes = _jitter(rng, CLOTHES[rng.integers(len(CLOTHES))], 10)
    line = _shade(hair, 0.25) if rng.random() < 0.5 else (35, 25, 30)
    long_hair = rng.random() < 1.0
    blush = rng.random() < 0.5
    open_mouth = rng.random() < 0.35

    u = size * _SS
    x0, y0, x1, y1 = -0.55, -0.45, 1.55, 1.75
    layer = Image.new("RGBA", (int((x1 - x0) * u), int((y1 - y0) * u)), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    lw = max(2, round(0.016 * u * EXP.get("lw", 1)))

    def P(x: float, y: float) -> tuple[float, float]:
        return ((x - x0) * u, (y - y0) * u)

    def poly(points, fill, outline=line, width=lw):
        d.polygon([P(x, y) for x, y in points], fill=fill, outline=outline, width=width)

    def ellipse(cx, cy, rx, ry, fill, outline=None, width=lw):
        d.ellipse([P(cx - rx, cy - ry), P(cx + rx, cy + ry)], fill=fill, outline=outline, width=width)

    # Head geometry, in units of the face box.
    fw = rng.uniform(0.35, 0.40) * EXP.get("fw", 1)           # half width of the face at the cheeks
    chin = rng.uniform(0.93, 0.99) + EXP.get("chin", 0)
    eye_y = rng.uniform(0.56, 0.61) + EXP.get("eye_y", 0)
    eye_dx = rng.uniform(0.15, 0.18) * EXP.get("eye_dx", 1)
    ew = rng.uniform(0.15, 0.18) / 2 * EXP.get("ew", 1)
    eh = rng.uniform(0.17, 0.21) / 2 * EXP.get("eh", 1)
    cheek_y = 0.5

    # Hair behind the head (and down the back when long).
    if long_hair:
        length = rng.uniform(1.3, 1.7)
        poly([(-0.12, 0.3), (-0.22, length * 0.7), (-0.18, length), (0.2, length - 0.1),
              (0.8, length - 0.1), (1.18, length), (1.22, length * 0.7), (1.12, 0.3)], fill=hair)
    ellipse(0.5, 0.38, 0.62, 0.56, fill=hair, outline=line)

    # Neck and shoulders.
    poly([(0.40, 0.8), (0.40, 1.12), (0.60, 1.12), (0.60, 0.8)], fill=_shade(skin, 0.92))
    poly([(-0.25, 1.8), (-0.15, 1.25), (0.15, 1.08), (0.5, 1.16), (0.85, 1.08), (1.15, 1.25),
          (1.25, 1.8)], fill=clothes)
    poly([(0.36, 1.08), (0.5, 1.22), (0.64, 1.08), (0.5, 1.14)], fill=_shade(clothes, 0.8))

    # Face: round forehead, cheeks tapering to a pointed chin.
    pts = [(0.5 + fw * math.cos(a), cheek_y - 0.5 * math.sin(a)) for a in np.linspace(0, math.pi, 24)]
    for t in np.linspace(0, 1, 16):
        pts.append((0.5 - fw * (1 - t ** 1.8), cheek_y + t * (chin - cheek_y)))
    for t in np.linspace(1, 0, 16)[1:]:
        pts.append((0.5 + fw * (1 - t ** 1.8), cheek_y + t * (chin - cheek_y)))
    poly(pts, fill=skin)

    if blush:
        for side in (-1, 1):
            ellipse(0.5 + side * (eye_dx + 0.03), eye_y + eh + 0.05, 0.07, 0.025, fill=(250, 160, 160))

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
        lash_bot = [(ex + side * ew * 1.05 * math.cos(a), ey - eh * (1.05 - 0.35 * math.sin(a)) * math.sin(a))
                    for a in np.linspace(math.pi - 0.1, 0.0, 14)]
        poly(lash_top + [(ex + side * ew * 1.45, ey - eh * 0.1)] + lash_bot, fill=(25, 18, 22), width=1)
        d.arc([P(ex - ew * 0.7, ey - eh * 1.2), P(ex + ew * 0.7, ey + eh * 1.05)], 60, 120, fill=line,
              width=max(1, lw // 2))
        brow_y = ey - eh - rng.uniform(0.07, 0.10)
        d.line([P(ex - side * ew * 0.8, brow_y + 0.01), P(ex, brow_y - 0.01),
                P(ex + side * ew * 0.9, brow_y + 0.015)], fill=_shade(hair, 0.4), width=lw, joint="curve")

    # Nose and mouth.
    d.line([P(0.51, 0.72), P(0.5, 0.745)], fill=_shade(skin, 0.6), width=max(1, lw // 2))
    if open_mouth:
        poly([(0.45, 0.81), (0.55, 0.81), (0.53, 0.85), (0.5, 0.86), (0.47, 0.85)],
             fill=(190, 70, 80), width=max(1, lw // 2))
    else:
        d.arc([P(0.45, 0.77), P(0.55, 0.83)], 20, 160, fill=line, width=max(1, lw // 2))

    # Bangs: a hair cap whose lower edge is a row of pointed strands over the forehead.
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
    poly(cap[:1] + [(-0.1, 0.55)] + edge[::-1] + [(1.1, 0.55)] + cap[::-1][:1] + cap[::-1], fill=hair)
    for side in (-1, 1):  # side locks framing the cheeks
        sx = 0.5 + side * (fw + 0.02)
        poly([(sx - side * 0.06, 0.25), (sx - side * 0.1, 0.55), (sx - side * 0.03, 1.0),
              (sx + side * 0.06, 0.7), (sx + side * 0.1, 0.3)], fill=hair)
    # Glossy ring and a few strand lines for a drawn look.
    d.arc([P(0.05, -0.05), P(0.95, 0.5)], 200, 340, fill=_shade(hair, 1.45), width=lw * 2)
    for _ in range(3):
        sx = rng.uniform(0.2, 0.8)
        d.line([P(sx, 0.0), P(sx + rng.uniform(-0.05, 0.05), 0.22)], fill=_shade(hair, 0.6), width=max(1, lw // 2))

    tags = ["1girl", "solo", "looking_at_viewer", "bangs", hair_tag, eye_tag,
            "long_hair" if long_hair else "short_hair", "portrait" if rng.random() < 0.5 else "upper_body"]
    if blush:
        tags.append("blush")
    tags.append("open_mouth" if open_mouth else "smile")
    return layer, (int(-x0 * size), int(-y0 * size)), tags
