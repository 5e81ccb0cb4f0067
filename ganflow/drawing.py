"""Procedural anime-style drawings for the demo mirror: a character on a backdrop, a comic page.

Apart from the mirror (demo.py) so that tuning a drawing against the face detector and
changing how posts are encoded and described are separate edits. Every random choice
comes from the caller's generator, in a fixed order, so a seed always draws the same picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

#: Tag -> the colour drawn for it; a face post carries the tags of what was drawn.
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
