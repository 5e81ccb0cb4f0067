"""A trained generator, live in the browser: `python -m ganflow.explore RUN` (or
`ganflow explore RUN`) serves a page on 127.0.0.1 with a seed grid, psi, style mixing,
noise, the run's edit directions as sliders, projection of an uploaded image, and a
download of the current image that carries its settings; `--render SETTINGS OUT.png`
turns those settings back into the same pixels.

Why it is built this way:
- One worker thread owns generation. Requests queue; the worker takes whatever waits (up
  to MAX_BATCH images) and renders it as one batch, so a busy server does more per call
  while a lone slider update costs one image (an image does not depend on what shares its
  batch: tests/test_explore.py checks it). Single images go before grid thumbnails, so a
  big grid never holds up a slider.
- Synthesis is compiled once (tf.function), two to ten times faster than eager calls on
  a CPU. Compiled arithmetic rounds differently from the eager samples stage, so an image
  here may differ from samples/seeds/ by one level in a few pixels; `--render` runs the
  same compiled function, so it gives exactly the pixels the page showed.
- Projection takes seconds to minutes: it runs on a thread of its own, polled by the page.
- Every name in a request (direction, projection, job) is looked up in a dict built at
  start; nothing is joined into a path, evaluated or unpickled, and sizes are capped.
- A local server is still reachable from every page the browser opens: `Guard` answers
  only requests addressed to this server's own host names (a DNS-rebinding page names its
  own), takes a state-changing request only with the page's X-Ganflow header (a
  cross-origin page cannot add it without a CORS preflight, which is never approved) and
  never a foreign Origin or Sec-Fetch-Site, and caps every body from its Content-Length
  before anything reads it.
- Nothing a request sends may cost more than it looks: an upload's pixel count is read
  from its header and refused above MAX_PIXELS before a pixel is decoded, one upload is
  decoded at a time and only when no projection runs, the render queue is bounded, and
  work queued for a client that hung up is dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import ipaddress
import itertools
import json
import logging
import queue
import re
import socket
import struct
import sys
import threading
import uuid
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence

import numpy as np
import tensorflow as tf
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image, PngImagePlugin, UnidentifiedImageError
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from . import inversion, networks
from .convnets import load_encoder
from .imaging import ImageRejected, describe, fit_square, to_array, to_srgb, upright
from .latents import DEFAULT_PSI, MAX_SEED, Directions, load_directions, load_w, map_latents, seed_noise, seed_z
from .names import EDIT_METHODS, sample_name
from .runlog import SetupError, logged
from .weights import MANIFEST, load_export

log = logging.getLogger(__name__)

MAX_BATCH = 8                  # images the worker renders in one call
MAX_ITEMS = 64                 # images one /api/batch request may ask for
MAX_QUEUED = 2 * MAX_ITEMS     # images waiting for the worker: a full grid and the next one
MAX_JSON = 64 << 10            # bytes of a JSON request, plus W_NUMBER_BYTES per number of one w
W_NUMBER_BYTES = 32            # a float as JSON.stringify writes it, with its comma
MAX_UPLOAD = 8 << 20           # bytes of an image to project
MAX_FORM = MAX_UPLOAD + (64 << 10)  # bytes of the upload's multipart body
MAX_PIXELS = 4096 * 4096       # pixels of an uploaded image (16.7 MP: 67 MB decoded as RGBA)
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
SETTINGS_KEY = "ganflow-settings"  # the PNG text chunk of a downloaded image
PAGE_HEADER = "x-ganflow"      # the page sends `X-Ganflow: 1` on its requests
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_DRAW = 2 ** 31 - 1
PSI_LIMIT = 2.0
STRENGTH_LIMIT = 10.0          # in standard deviations of w along a direction
KEPT_JOBS = 16                 # finished projection jobs remembered for polling
PAGE = "explore_page.html"


# ----- settings -----------------------------------------------------------------------------


class Mix(BaseModel):
    """Style mixing: the w indices [start, stop) (or a named style group) take `seed`'s w."""

    model_config = ConfigDict(extra="forbid")
    seed: StrictInt = Field(ge=0, le=MAX_SEED)
    layers: Literal["coarse", "middle", "fine"] | None = None
    start: StrictInt | None = Field(None, ge=0)
    stop: StrictInt | None = Field(None, ge=0)


class Settings(BaseModel):
    """Everything that decides one image. `w` (ws [num_ws][w_dim], before edits), when
    given, stands for what seed, psi and mix would make: a projection has no seed, and a
    downloaded image carries it so that it is regenerated from the very numbers. `seed`
    and `draw` still key the noise of noise 'random'."""

    model_config = ConfigDict(extra="forbid")
    seed: StrictInt = Field(0, ge=0, le=MAX_SEED)
    psi: float = Field(DEFAULT_PSI, ge=-PSI_LIMIT, le=PSI_LIMIT, allow_inf_nan=False)
    noise: Literal["const", "random", "none"] = "const"
    draw: StrictInt = Field(0, ge=0, le=MAX_DRAW)
    mix: Mix | None = None
    edits: dict[str, Annotated[float, Field(ge=-STRENGTH_LIMIT, le=STRENGTH_LIMIT, allow_inf_nan=False)]] = {}
    w: list[list[float]] | None = None


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Settings] = Field(min_length=1, max_length=MAX_ITEMS)


# ----- the run ----------------------------------------------------------------------------


@dataclass
class Run:
    """Where an exported generator and what was made from it (edits, projections) lie, and
    the truncation its samples were made with (where the page starts)."""

    export: Path
    edits: Path
    projects: Path
    psi: float = DEFAULT_PSI


def run_psi(root: Path) -> float:
    """The psi the run's samples were made with (samples/settings.json), else the schema's."""
    path = root / "samples" / "settings.json"
    try:
        psi = json.loads(path.read_text(encoding="utf-8"))["psi"]
        if isinstance(psi, (int, float)) and not isinstance(psi, bool) and abs(psi) <= PSI_LIMIT:
            return float(psi)
        log.warning("%s holds psi %r, outside -%g..%g; the page starts at psi %g", path, psi, PSI_LIMIT,
                    PSI_LIMIT, DEFAULT_PSI)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("cannot read %s (%s); the page starts at psi %g", path, exc, DEFAULT_PSI)
    return DEFAULT_PSI


def find_run(path: str | Path) -> Run:
    """An export directory (holding export.json), or results/<run>/: then its last
    round's export, or its imported generator when it was not trained here."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        root = path.parent.parent if path.parent.name.startswith("round-") else path.parent
        return Run(path, root / "edits", root / "project", run_psi(root))
    rounds = [p.parent for p in path.glob(f"round-*/train/{MANIFEST}") if p.parts[-3][6:].isdigit()]
    exports = sorted(rounds, key=lambda p: int(p.parent.name[6:]))
    if not exports and (path / "imported" / MANIFEST).is_file():
        exports = [path / "imported"]
    if not exports:
        raise SetupError(f"{path} holds no exported generator (no {MANIFEST}, no round-*/train/{MANIFEST}, no "
                         f"imported/{MANIFEST}); give a run's export directory or results/<run>/")
    return Run(exports[-1], path / "edits", path / "project", run_psi(path))


class Explorer:
    """A loaded run and the one function that turns settings into pixels."""

    def __init__(self, run: Run, *, project_steps: int = 100) -> None:
        self.run = run
        self.G, self.D, _ = load_export(run.export)
        G = self.G
        self.groups = {k: v for k, v in networks.style_groups(G.resolution).items() if v[1] > v[0]}
        self.directions = self._load_directions(run.edits)
        self.projections = {p.parent.name: p for p in sorted(run.projects.glob("*/w.npz"))}
        encoder_npz = run.projects / "encoder.npz"
        self.encoder_npz = encoder_npz if encoder_npz.is_file() else None
        self.project_steps = project_steps
        self.const_noise = [conv.noise_const.numpy()[0] for conv in G.synthesis.convs]
        spec = [tf.TensorSpec([None, G.num_ws, G.w_dim], tf.float32),
                [tf.TensorSpec([None, *s], tf.float32) for s in G.synthesis.noise_shapes]]
        self._synthesis = tf.function(lambda ws, noise: G.synthesis(ws, noise=noise), input_signature=spec)

    def _load_directions(self, folder: Path) -> dict[str, Directions]:
        """Direction name -> its file's Directions; a file made for another generator is
        left out with a warning (an export directory may sit beside foreign results)."""
        out: dict[str, Directions] = {}
        for method in EDIT_METHODS:  # the directions files an edits/ folder may hold
            path = folder / f"{method}.npz"
            if not path.is_file():
                continue
            d = load_directions(path)
            if d.vectors.shape[1] != self.G.w_dim or d.layers.max(initial=0) > self.G.num_ws:
                log.warning("%s was made for another generator (w_dim %d); its directions are left out", path,
                            d.vectors.shape[1])
                continue
            out.update((name, d) for name in d.names)
        return out

    def info(self) -> dict[str, Any]:
        G = self.G
        return {"run": str(self.run.export), "resolution": G.resolution, "num_ws": G.num_ws, "w_dim": G.w_dim,
                "groups": self.groups, "psi": self.run.psi, "max_seed": MAX_SEED,
                "directions": [{"name": n, "layers": [int(x) for x in d.layers[d.index(n)]]}
                               for n, d in self.directions.items()],
                "projections": list(self.projections), "encoder": self.encoder_npz is not None, "project_steps": self.project_steps,
                "max_upload": MAX_UPLOAD}

    def check(self, s: Settings) -> None:
        """What the schema cannot know: names and shapes of this run. One sentence each."""
        G = self.G
        unknown = sorted(set(s.edits) - set(self.directions))
        if unknown:
            known = ", ".join(self.directions) or "none (this run has no edits/ directions)"
            raise SetupError(f"direction {unknown[0]!r} is not known; the directions are {known}")
        if s.mix is not None:
            self.mix_range(s.mix)
        if s.w is not None:
            w = np.asarray(s.w, np.float32)
            if w.shape != (G.num_ws, G.w_dim) or not np.isfinite(w).all():
                raise SetupError(f"w must be {G.num_ws} rows of {G.w_dim} finite numbers, got shape {w.shape}")

    def mix_range(self, mix: Mix) -> tuple[int, int]:
        """[start, stop) of a mix: a style group's, or its own (a per-layer cutoff)."""
        if mix.layers is not None and (mix.start, mix.stop) == (None, None):
            if mix.layers not in self.groups:
                raise SetupError(f"this {self.G.resolution}px model has no {mix.layers} styles; "
                                 f"use {', '.join(self.groups)} or start/stop")
            return self.groups[mix.layers]
        if mix.layers is None and None not in (mix.start, mix.stop) and 0 <= mix.start < mix.stop <= self.G.num_ws:
            return mix.start, mix.stop
        raise SetupError(f"a mix takes layers (one of {', '.join(self.groups)}) or start < stop within "
                         f"0..{self.G.num_ws}, not both")

    def mapped(self, items: Sequence[Settings]) -> dict[tuple[float, int], np.ndarray]:
        """ws [num_ws, w_dim] of every (psi, seed) the items need, mapped as samples.py maps
        them (padded batches, so a seed's w does not depend on the others): one mapping
        call per psi value, not one per image."""
        wanted: dict[float, set[int]] = {}
        for s in items:
            if s.w is None:
                wanted.setdefault(s.psi, set()).update([s.seed] + ([s.mix.seed] if s.mix else []))
        out = {}
        for psi, seeds in wanted.items():
            seeds = sorted(seeds)
            ws = map_latents(self.G, seed_z(seeds, self.G.z_dim), psi)
            out.update(((psi, seed), w) for seed, w in zip(seeds, ws))
        return out

    def styles(self, s: Settings, mapped: dict[tuple[float, int], np.ndarray] | None = None) -> np.ndarray:
        """ws [num_ws, w_dim] before edits: the seed's, truncated by psi, the mix range taken
        from the mix seed's; or s.w."""
        if s.w is not None:
            return np.asarray(s.w, np.float32)
        mapped = mapped or self.mapped([s])
        ws = mapped[s.psi, s.seed].copy()
        if s.mix:
            start, stop = self.mix_range(s.mix)
            ws[start:stop] = mapped[s.psi, s.mix.seed][start:stop]
        return ws

    def edited(self, ws: np.ndarray, s: Settings) -> np.ndarray:
        """ws moved along every direction of s.edits, in name order (the sum's rounding then
        does not depend on the order a request listed them in)."""
        for name in sorted(s.edits):
            ws = self.directions[name].shift(ws, name, s.edits[name])
        return ws

    def noise(self, s: Settings) -> list[np.ndarray]:
        """Per-layer noise as explicit images: one compiled graph serves all three modes."""
        if s.noise == "random":
            return seed_noise(self.G.synthesis.noise_shapes, s.seed, s.draw)
        if s.noise == "none":
            return [np.zeros_like(n) for n in self.const_noise]
        return self.const_noise

    def render(self, items: Sequence[Settings]) -> np.ndarray:
        """uint8 [n, res, res, 3] in one synthesis call (n <= MAX_BATCH)."""
        mapped = self.mapped(items)
        ws = np.stack([self.edited(self.styles(s, mapped), s) for s in items])
        noise = [self.noise(s) for s in items]
        layers = [tf.constant(np.stack([x[j] for x in noise])) for j in range(len(self.const_noise))]
        return networks.to_uint8(self._synthesis(tf.constant(ws), layers))

    def resolved(self, s: Settings) -> dict[str, Any]:
        """The settings as a download carries them: every field, the mix range spelled
        out, and w (before edits) as exact float32 values."""
        out = s.model_dump(exclude={"w"})
        if s.mix is not None:
            start, stop = self.mix_range(s.mix)
            out["mix"] = {"seed": s.mix.seed, "layers": None, "start": start, "stop": stop}
        out["w"] = self.styles(s).tolist()
        return out


def png_bytes(pixels: np.ndarray, settings: dict[str, Any] | None = None) -> bytes:
    """PNG of uint8 HWC pixels, with the settings as a compressed text chunk when given."""
    info = None
    if settings is not None:
        info = PngImagePlugin.PngInfo()
        info.add_itxt(SETTINGS_KEY, json.dumps(settings, sort_keys=True), zip=True)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


_DECODING = threading.Lock()  # one upload decoded at a time: two at once doubled the peak memory


def upload_target(data: bytes, resolution: int) -> np.ndarray:
    """An uploaded file as a projection target: its centred square at the model's size,
    as project.load_target cuts a file on disk. ImageRejected 'too_large' (from the
    header, before decoding), 'truncated' or 'undecodable'."""
    with _DECODING:
        return to_array(fit_square(to_srgb(upright(open_upload(data))), resolution))


def open_upload(data: bytes) -> Image.Image:
    """The fully decoded upload. Its size comes from the header first: a 1 MB PNG can
    claim 20000x20000 pixels (1.2 GB decoded), so it is refused before a pixel is decoded.
    A PNG whose pixel stream ends early is refused too: Pillow would fill the rest black."""
    try:
        img = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_large", describe(exc)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("undecodable", f"not a {', '.join(UPLOAD_FORMATS)} file ({describe(exc)})") from None
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageRejected("too_large", f"it is {width}x{height} pixels; the limit is {MAX_PIXELS:,} pixels "
                                         f"({int(MAX_PIXELS ** 0.5)}x{int(MAX_PIXELS ** 0.5)})")
    if img.format == "PNG" and not png_complete(data):
        raise ImageRejected("truncated", "its pixel data ends before the last row")
    try:
        img.load()  # ImageFile.LOAD_TRUNCATED_IMAGES stays False: a file cut short raises here
    except (OSError, SyntaxError, ValueError) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "undecodable"
        raise ImageRejected(reason, describe(exc)) from None
    return img


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type


def png_complete(data: bytes) -> bool:
    """Whether a PNG's IDAT stream inflates to every row its header promises. Pillow takes a
    zlib stream that ends early as the end of the image (a 138-byte file then passes for a
    20000x20000 one); this reads the chunks and inflates in bounded steps, keeping nothing."""
    header, idat, pos = b"", [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            header = data[pos + 8:pos + 8 + length]
        elif kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length
    if len(header) < 13 or header[9] not in _CHANNELS:
        return False
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header[:13])
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    bits = _CHANNELS[colour] * depth
    expected = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        expected += h * (1 + (w * bits + 7) // 8) if w > 0 and h > 0 else 0
    inflater, stream, got = zlib.decompressobj(), b"".join(idat), 0
    try:
        while got < expected and (out := inflater.decompress(stream, 1 << 20)):
            got, stream = got + len(out), inflater.unconsumed_tail
    except zlib.error:
        return False
    return got >= expected


def read_settings(path: str | Path) -> Settings:
    """Settings from a JSON file or from a PNG that the page's download wrote."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            with Image.open(path) as img:
                text = img.text.get(SETTINGS_KEY)
            if text is None:
                raise SetupError(f"{path} carries no {SETTINGS_KEY} chunk; give a PNG downloaded from the "
                                 "explorer or its settings JSON")
        else:
            text = path.read_text()
        return Settings.model_validate_json(text)
    except (OSError, ValidationError) as exc:
        raise SetupError(f"cannot read settings from {path}: {exc}") from None


# ----- the worker and the projector -------------------------------------------------------------


class QueueFull(Exception):
    """The worker has MAX_QUEUED images waiting: the request is refused, not queued, so that
    abandoned or hostile batches cannot make every later request wait minutes."""


class Worker:
    """The one thread that generates. Lower `priority` goes first; a request cancelled
    before its turn (its client hung up) is skipped."""

    def __init__(self, explorer: Explorer) -> None:
        self.explorer = explorer
        self.queue: queue.PriorityQueue = queue.PriorityQueue()
        self.order = itertools.count()
        self.lock = threading.Lock()
        self.unfinished = 0  # queued or being rendered; a cancelled image stops counting at once
        threading.Thread(target=self._loop, name="ganflow-render", daemon=True).start()

    def submit(self, settings: Settings, priority: int = 0) -> Future:
        return self.submit_all([settings], priority)[0]

    def submit_all(self, items: Sequence[Settings], priority: int = 0) -> list[Future]:
        """One future per item, all queued or none (QueueFull): half a grid is wasted work."""
        with self.lock:
            if self.unfinished + len(items) > MAX_QUEUED:
                raise QueueFull(f"{self.unfinished} images are waiting to be rendered (at most {MAX_QUEUED}); "
                                "try again in a moment")
            self.unfinished += len(items)
            futures = [Future() for _ in items]
        for s, future in zip(items, futures):
            future.add_done_callback(self._finished)
            self.queue.put((priority, next(self.order), s, future))
        return futures

    def _finished(self, future: Future) -> None:
        """Done, failed or cancelled: cancelled work no longer holds a place in the queue,
        though its entry waits there until the worker skips it."""
        with self.lock:
            self.unfinished -= 1

    def _take(self) -> list[tuple]:
        """Up to MAX_BATCH live jobs (waiting for the first); cancelled ones are dropped here,
        so a batch is not cut short by work nobody waits for."""
        jobs: list[tuple] = []
        while len(jobs) < MAX_BATCH:
            try:
                job = self.queue.get(block=not jobs)
            except queue.Empty:
                break
            if job[3].set_running_or_notify_cancel():
                jobs.append(job)
        return jobs

    def _loop(self) -> None:
        while True:
            jobs = self._take()
            try:
                images = self.explorer.render([j[2] for j in jobs])
            except Exception as exc:  # noqa: BLE001 - the requests get the error; the worker keeps serving
                log.exception("render failed")
                for j in jobs:
                    j[3].set_exception(exc)
            else:
                for j, image in zip(jobs, images):
                    j[3].set_result(image)


@dataclass
class Job:
    state: str = "reading"  # reading (the upload), queued, running, done, failed
    result: dict[str, Any] = field(default_factory=dict)


class Projector:
    """Projections of uploaded images, one at a time on their own thread: the run's
    discriminator as the distance (nothing to download), started at the encoder's guess
    when the run has an encoder."""

    def __init__(self, explorer: Explorer) -> None:
        self.explorer = explorer
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ganflow-project")
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.encoder = None
        if explorer.encoder_npz is not None:
            self.encoder = load_encoder(explorer.encoder_npz, explorer.G)

    def busy(self) -> bool:
        return any(j.state in ("reading", "queued", "running") for j in self.jobs.values())

    def reserve(self) -> str:
        """The one projection slot, taken before the upload is read or decoded (RuntimeError
        when taken): a second upload during a projection, or two at once, costs nothing."""
        with self.lock:
            if self.busy():
                raise RuntimeError("a projection is already running; wait for it to finish")
            done = [k for k, j in self.jobs.items() if j.state in ("done", "failed")]
            for key in done[:max(0, len(done) - KEPT_JOBS + 1)]:
                del self.jobs[key]
            key = uuid.uuid4().hex
            self.jobs[key] = Job()
        return key

    def release(self, key: str) -> None:
        """Give the slot back: the upload was refused."""
        with self.lock:
            self.jobs.pop(key, None)

    def start(self, key: str, target: np.ndarray) -> None:
        self.jobs[key].state = "queued"
        self.pool.submit(self._project, key, target)

    def submit(self, target: np.ndarray) -> str:
        key = self.reserve()
        self.start(key, target)
        return key

    def _project(self, key: str, target: np.ndarray) -> None:
        ex, job = self.explorer, self.jobs[key]
        job.state = "running"
        try:
            start = self.encoder.guess(target) if self.encoder is not None else None
            p = inversion.project(ex.G, target, inversion.discriminator_features(ex.D),
                                   inversion.Settings(steps=ex.project_steps), start=start)
            job.result = {"w": p.ws.tolist(), "distance": float(p.distance[-1])}
            job.state = "done"
        except Exception as exc:  # noqa: BLE001 - reported to the page that polls the job
            log.exception("projection failed")
            job.result, job.state = {"error": str(exc)}, "failed"


# ----- the guard ------------------------------------------------------------------------------


class BodyTooLarge(StarletteHTTPException):
    """A body that streams past its cap (whatever its Content-Length said)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over its limit of {limit} bytes")


class Guard:
    """Checks every request passes before FastAPI parses it or an endpoint runs (a plain
    ASGI middleware, so nothing has read the body yet):

    - Host: one of the names the server was started for; a DNS-rebinding page sends its
      own name, so it reaches nothing, not even GET /api/info (421).
    - A state-changing method needs the page's X-Ganflow header: a cross-origin page can
      post a form or a simple request, but not with a custom header unless a CORS
      preflight approves it, and this server approves none. A present Origin must be our
      own, a present Sec-Fetch-Site same-origin or none (403).
    - The body: no chunked bodies (411), a Content-Length within the route's limit (413,
      refused without reading a byte; 0 for routes that take no body), and the bytes
      counted as they arrive, in case a body runs past what its header said.
    A refusal closes the connection, so an unread body is not drained either.
    """

    def __init__(self, app, hosts: frozenset[str], limits: dict[tuple[str, str], int]) -> None:
        self.app, self.hosts, self.limits = app, hosts, limits

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # lifespan; the app has no websocket routes
            return await self.app(scope, receive, send)
        refused = self.refusal(scope["method"], scope["path"], Headers(scope=scope))
        if refused is not None:
            status, detail = refused
            response = JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})
            return await response(scope, receive, send)
        limit, received, started = self.limits.get((scope["method"], scope["path"]), 0), 0, False

        async def counted_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        async def watched_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await JSONResponse({"detail": exc.detail}, 413, headers={"Connection": "close"})(scope, receive, send)

    def refusal(self, method: str, path: str, headers: Headers) -> tuple[int, str] | None:
        """(status, one sentence) for a request that must not reach the app, else None."""
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            return 421, (f"this server answers requests for {', '.join(sorted(self.hosts))} only "
                         "(start it with --server-name for another name)")
        if method not in SAFE_METHODS:
            if headers.get(PAGE_HEADER) != "1":
                return 403, "a request that changes state must come from the explorer's page (X-Ganflow: 1)"
            if headers.get("origin", f"http://{host}").lower() != f"http://{host}":
                return 403, "a request from another origin is refused"
            if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return 403, "a request from another site is refused"
        return self.body_refusal(method, path, headers)

    def body_refusal(self, method: str, path: str, headers: Headers) -> tuple[int, str] | None:
        """411/413 from the headers alone: the body is never read to find out."""
        limit, length = self.limits.get((method, path), 0), headers.get("content-length")
        if "transfer-encoding" in headers or (length is None and method not in SAFE_METHODS):
            return 411, "send the body with a Content-Length (chunked bodies are not taken)"
        if length is not None and not length.isdigit():
            return 400, "the Content-Length is not a number"
        if length is not None and int(length) > limit:
            return 413, f"the request body is {int(length)} bytes; {method} {path} takes at most {limit}"
        return None


def json_limit(explorer: Explorer) -> int:
    """Bytes of the largest JSON request the page sends: settings plus one w (a projection),
    which for a 1024 px model is about 300 KB; a batch gets no more (the page sends seeds)."""
    return MAX_JSON + explorer.G.num_ws * explorer.G.w_dim * W_NUMBER_BYTES


def allowed_hosts(host: str, port: int, names: Sequence[str] = ()) -> frozenset[str]:
    """The Host headers the server answers: 127.0.0.1 and localhost at its port, the
    address it listens on, and each NAME[:PORT] it was given (another machine's name for
    it, an SSH tunnel's localhost:PORT). Port 80 is also named without it, as browsers do."""
    bare = {"127.0.0.1", "localhost", host}
    named = set()
    for name in names:
        if re.fullmatch(r"[^:]+:\d+|\[[^]]+\]:\d+", name):
            named.add(name)
        else:
            bare.add(name)
    bare = {f"[{h.strip('[]')}]" if ":" in h else h for h in bare}  # IPv6 as a Host header has it
    full = named | {f"{h}:{port}" for h in bare} | (bare if port == 80 else set())
    return frozenset(h.lower() for h in full)


async def hung_up(request: Request) -> None:
    """Returns when the client disconnects (its body is read: the next message is that)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)


# ----- the app ----------------------------------------------------------------------------------


def create_app(explorer: Explorer, worker: Worker, projector: Projector, hosts: frozenset[str]):
    """The FastAPI app: the page and a small JSON/PNG API, behind the Guard."""
    app = FastAPI(title="ganflow explore", docs_url=None, redoc_url=None, openapi_url=None)
    page = resources.files("ganflow").joinpath(PAGE).read_text(encoding="utf-8")
    json_cap = json_limit(explorer)
    limits = {("POST", "/api/render"): json_cap, ("POST", "/api/batch"): json_cap,
              ("POST", "/api/download"): json_cap, ("POST", "/api/project"): MAX_FORM}
    app.add_middleware(Guard, hosts=hosts, limits=limits)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """Which field is wrong and why, without echoing the (maybe huge) input back."""
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:10]]
        return JSONResponse({"detail": errors}, status_code=422)

    def checked(s: Settings) -> Settings:
        try:
            explorer.check(s)
        except SetupError as exc:
            raise HTTPException(422, str(exc)) from None
        return s

    async def images(request: Request, items: Sequence[Settings], priority: int = 0) -> list[np.ndarray]:
        """The pixels of checked settings, from the worker, without holding the event loop.
        Nothing is queued for a client that is gone, a full queue is a 503, and what a
        client leaves queued when it hangs up is cancelled (the worker skips it)."""
        if await request.is_disconnected():
            raise HTTPException(499, "the client hung up")
        try:
            futures = worker.submit_all(items, priority)
        except QueueFull as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
        done = asyncio.gather(*map(asyncio.wrap_future, futures))
        gone = asyncio.ensure_future(hung_up(request))
        await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if not done.done():
            for future in futures:
                future.cancel()
            done.cancel()
            raise HTTPException(499, "the client hung up")
        return done.result()

    async def png(pixels: np.ndarray, settings: dict[str, Any] | None = None) -> bytes:
        return await asyncio.to_thread(png_bytes, pixels, settings)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/api/info")
    async def info() -> dict:
        return explorer.info()

    @app.post("/api/render")
    async def render(s: Settings, request: Request) -> Response:
        [pixels] = await images(request, [checked(s)])
        return Response(await png(pixels), media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.post("/api/batch")
    async def batch(b: Batch, request: Request) -> dict:
        for s in b.items:
            checked(s)
        rendered = await images(request, b.items, priority=1)
        encoded = await asyncio.gather(*(png(p) for p in rendered))
        return {"images": ["data:image/png;base64," + base64.b64encode(e).decode() for e in encoded]}

    @app.post("/api/download")
    async def download(s: Settings, request: Request) -> Response:
        [pixels] = await images(request, [checked(s)])
        name = sample_name(s.seed) if s.w is None else "projection.png"
        resolved = await asyncio.to_thread(explorer.resolved, s)
        return Response(await png(pixels, resolved), media_type="image/png",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/api/projection/{name}")
    async def saved_projection(name: str) -> dict:
        path = explorer.projections.get(name)
        if path is None:
            raise HTTPException(404, f"projection {name!r} is not known; there are "
                                     f"{', '.join(explorer.projections) or 'none'}")
        ws, _ = load_w(path, explorer.G)
        return {"w": ws.tolist()}

    @app.post("/api/project")
    async def upload(request: Request) -> dict:
        """The projection slot is taken before the form is parsed or the image decoded."""
        try:
            key = projector.reserve()
        except RuntimeError as exc:
            raise HTTPException(429, str(exc)) from None
        try:
            target = await asyncio.to_thread(upload_target, await uploaded(request), explorer.G.resolution)
        except ImageRejected as exc:
            projector.release(key)
            if exc.reason == "too_large":
                raise HTTPException(413, f"the image is too large: {exc.detail}") from None
            raise HTTPException(422, f"the upload is not a readable image ({', '.join(UPLOAD_FORMATS)}): {exc}") from None
        except BaseException:
            projector.release(key)
            raise
        projector.start(key, target)
        return {"job": key, "target": "data:image/png;base64," + base64.b64encode(png_bytes(target)).decode()}

    async def uploaded(request: Request) -> bytes:
        """The bytes of the form's one file field `file`."""
        async with request.form(max_files=1, max_fields=1) as form:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise HTTPException(422, "send the image as the multipart form field 'file'")
            data = await file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise HTTPException(413, f"the image is over {MAX_UPLOAD >> 20} MiB; send a smaller one")
        return data

    @app.get("/api/project/{key}")
    async def project_job(key: str) -> dict:
        job = projector.jobs.get(key)
        if job is None:
            raise HTTPException(404, f"projection job {key!r} is not known")
        return {"state": job.state, **job.result}

    return app


# ----- the command line ---------------------------------------------------------------------------


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warm_up(explorer: Explorer) -> None:
    """Run every batch size once, so the first requests do not pay for it (the compiled
    kernels are set up per shape)."""
    for size in range(1, MAX_BATCH + 1):
        explorer.render([Settings()] * size)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one). IPPROTO_TCP spelled out: asyncio sets
    TCP_NODELAY only on sockets that say so, and without it every keep-alive response
    waits 40 ms for a delayed ACK."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # before the address is printed: whoever reads it may connect at once
    except OSError as exc:
        raise SetupError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None
    return sock


def serve(explorer: Explorer, host: str, port: int, names: Sequence[str] = ()) -> None:
    import uvicorn

    sock = listen(host, port)
    bound = sock.getsockname()[1]
    app = create_app(explorer, Worker(explorer), Projector(explorer), allowed_hosts(host, bound, names))
    shown = f"[{host}]" if ":" in host else host
    print(f"ganflow explore: {explorer.run.export} ({explorer.G.resolution} px) on http://{shown}:{bound}/ "
          "(Ctrl-C stops it)", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)).run(sockets=[sock])


def main(argv: Sequence[str] | None = None, prog: str = "python -m ganflow.explore") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Explore a trained generator in the browser.")
    parser.add_argument("run", help="a run's export directory (holding export.json) or results/<run>/")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host other than this machine (anyone who reaches it can use the page)")
    parser.add_argument("--server-name", action="append", default=[], metavar="NAME[:PORT]",
                        help="another name browsers reach this server by (the machine's name with "
                             "--allow-remote, an SSH tunnel's localhost:PORT); requests for names not "
                             "given are refused (repeatable; 127.0.0.1, localhost and --host are always taken)")
    parser.add_argument("--project-steps", type=int, default=100,
                        help="optimisation steps of an uploaded image's projection (default 100)")
    parser.add_argument("--render", nargs=2, action="append", metavar=("SETTINGS", "OUT_PNG"),
                        help="instead of serving: render a downloaded PNG's (or a JSON file's) settings to OUT_PNG "
                             "(repeatable: several images for one model load)")
    parser.add_argument("--log", help="also log to this file")
    args = parser.parse_args(argv)
    if not is_local(args.host) and not args.allow_remote:
        parser.error(f"--host {args.host} would open the explorer to other machines; add --allow-remote "
                     "if that is what you want")
    if not 0 <= args.port <= 65535 or args.project_steps < 1:
        parser.error("--port must lie in 0..65535 and --project-steps be at least 1")
    with logged(args.log):
        explorer = Explorer(find_run(args.run), project_steps=args.project_steps)
        if args.render:
            for source, out in args.render:
                s = read_settings(source)
                explorer.check(s)
                Path(out).write_bytes(png_bytes(explorer.render([s])[0]))
                log.info("rendered %s to %s", source, out)
            return 0
        warm_up(explorer)
        serve(explorer, args.host, args.port, args.server_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
