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
import socket
import sys
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence

import numpy as np
import tensorflow as tf
from fastapi import FastAPI, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image, PngImagePlugin
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from . import networks
from . import project as projection
from .edit import Directions, load_directions
from .images import fit_square
from .imaging import ImageRejected, decode_srgb, to_array
from .runlog import SetupError, logged
from .samples import DEFAULT_PSI, MAX_SEED, latents, map_latents, seed_noise
from .weights import MANIFEST, load_export

log = logging.getLogger(__name__)

MAX_BATCH = 8                  # images the worker renders in one call
MAX_ITEMS = 64                 # images one /api/batch request may ask for
MAX_BODY = 16 << 20            # bytes of a JSON request (a batch of items that carry w)
MAX_UPLOAD = 8 << 20           # bytes of an image to project
MAX_DRAW = 2 ** 31 - 1
PSI_LIMIT = 2.0
STRENGTH_LIMIT = 10.0          # in standard deviations of w along a direction
KEPT_JOBS = 16                 # finished projection jobs remembered for polling
SETTINGS_KEY = "ganflow-settings"  # the PNG text chunk of a downloaded image
METHODS = ("sefa", "ganspace", "tags")  # the directions files an edits/ folder may hold
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
    """Where an exported generator and what was made from it (edits, projections) lie."""

    export: Path
    edits: Path
    projects: Path


def find_run(path: str | Path) -> Run:
    """An export directory (holding export.json), or results/<dataset>/: then its last
    round's export, or its imported generator when it was not trained here."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        root = path.parent.parent if path.parent.name.startswith("round-") else path.parent
        return Run(path, root / "edits", root / "project")
    rounds = [p.parent for p in path.glob(f"round-*/train/{MANIFEST}") if p.parts[-3][6:].isdigit()]
    exports = sorted(rounds, key=lambda p: int(p.parent.name[6:]))
    if not exports and (path / "imported" / MANIFEST).is_file():
        exports = [path / "imported"]
    if not exports:
        raise SetupError(f"{path} holds no exported generator (no {MANIFEST}, no round-*/train/{MANIFEST}, no "
                         f"imported/{MANIFEST}); give a run's export directory or results/<dataset>/")
    return Run(exports[-1], path / "edits", path / "project")


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
        for method in METHODS:
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
                "groups": self.groups, "psi": DEFAULT_PSI, "max_seed": MAX_SEED,
                "directions": [{"name": n, "layers": [int(x) for x in d.layers[d.index(n)]]}
                               for n, d in self.directions.items()],
                "projections": list(self.projections), "encoder": self.encoder_npz is not None, "project_steps": self.project_steps}

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
            ws = map_latents(self.G, latents(seeds, self.G.z_dim), psi)
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


def upload_target(data: bytes, resolution: int) -> np.ndarray:
    """An uploaded file as a projection target: its centred square at the model's size,
    as project.load_target cuts a file on disk."""
    return to_array(fit_square(decode_srgb(data, "upload"), resolution))


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


class Worker:
    """The one thread that generates. Lower `priority` goes first; a request cancelled
    before its turn is skipped."""

    def __init__(self, explorer: Explorer) -> None:
        self.explorer = explorer
        self.queue: queue.PriorityQueue = queue.PriorityQueue()
        self.order = itertools.count()
        threading.Thread(target=self._loop, name="ganflow-render", daemon=True).start()

    def submit(self, settings: Settings, priority: int = 0) -> Future:
        future: Future = Future()
        self.queue.put((priority, next(self.order), settings, future))
        return future

    def _loop(self) -> None:
        while True:
            jobs = [self.queue.get()]
            while len(jobs) < MAX_BATCH:
                try:
                    jobs.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            jobs = [j for j in jobs if j[3].set_running_or_notify_cancel()]
            if not jobs:
                continue
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
    state: str = "queued"
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
            from . import encoder  # only runs with an encoder pay for its import
            self.encoder = encoder.load(explorer.encoder_npz, explorer.G)

    def busy(self) -> bool:
        return any(j.state in ("queued", "running") for j in self.jobs.values())

    def submit(self, target: np.ndarray) -> str:
        with self.lock:
            if self.busy():
                raise RuntimeError("a projection is already running; wait for it to finish")
            done = [k for k, j in self.jobs.items() if j.state in ("done", "failed")]
            for key in done[:max(0, len(done) - KEPT_JOBS + 1)]:
                del self.jobs[key]
            key = uuid.uuid4().hex
            self.jobs[key] = Job()
        self.pool.submit(self._project, key, target)
        return key

    def _project(self, key: str, target: np.ndarray) -> None:
        ex, job = self.explorer, self.jobs[key]
        job.state = "running"
        try:
            start = self.encoder.guess(target) if self.encoder is not None else None
            p = projection.project(ex.G, target, projection.discriminator_features(ex.D),
                                   projection.Settings(steps=ex.project_steps), start=start)
            job.result = {"w": p.ws.tolist(), "distance": float(p.distance[-1])}
            job.state = "done"
        except Exception as exc:  # noqa: BLE001 - reported to the page that polls the job
            log.exception("projection failed")
            job.result, job.state = {"error": str(exc)}, "failed"


# ----- the app ----------------------------------------------------------------------------------


def create_app(explorer: Explorer, worker: Worker, projector: Projector):
    """The FastAPI app: the page and a small JSON/PNG API."""
    app = FastAPI(title="ganflow explore", docs_url=None, redoc_url=None, openapi_url=None)
    page = resources.files("ganflow").joinpath(PAGE).read_text(encoding="utf-8")

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        """Refuse big bodies before anything reads them."""
        if request.method == "POST":
            length = request.headers.get("content-length")
            limit = MAX_UPLOAD + 65536 if request.url.path == "/api/project" else MAX_BODY
            if length is None or not length.isdigit():
                return JSONResponse({"detail": "a POST needs a Content-Length"}, status_code=411)
            if int(length) > limit:
                return JSONResponse({"detail": f"the request is {int(length)} bytes; the limit is {limit}"},
                                    status_code=413)
        return await call_next(request)

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

    async def image(s: Settings, priority: int = 0) -> np.ndarray:
        """The pixels of checked settings, from the worker, without holding the event loop."""
        return await asyncio.wrap_future(worker.submit(s, priority))

    async def png(pixels: np.ndarray, settings: dict[str, Any] | None = None) -> bytes:
        return await asyncio.to_thread(png_bytes, pixels, settings)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/api/info")
    async def info() -> dict:
        return explorer.info()

    @app.post("/api/render")
    async def render(s: Settings) -> Response:
        pixels = await image(checked(s))
        return Response(await png(pixels), media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.post("/api/batch")
    async def batch(b: Batch) -> dict:
        for s in b.items:
            checked(s)
        images = await asyncio.gather(*(image(s, priority=1) for s in b.items))
        encoded = await asyncio.gather(*(png(p) for p in images))
        return {"images": ["data:image/png;base64," + base64.b64encode(e).decode() for e in encoded]}

    @app.post("/api/download")
    async def download(s: Settings) -> Response:
        pixels = await image(checked(s))
        name = f"seed{s.seed:06d}.png" if s.w is None else "projection.png"
        resolved = await asyncio.to_thread(explorer.resolved, s)
        return Response(await png(pixels, resolved), media_type="image/png",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/api/projection/{name}")
    async def saved_projection(name: str) -> dict:
        path = explorer.projections.get(name)
        if path is None:
            raise HTTPException(404, f"projection {name!r} is not known; there are "
                                     f"{', '.join(explorer.projections) or 'none'}")
        ws, _ = projection.load_w(path, explorer.G)
        return {"w": ws.tolist()}

    @app.post("/api/project")
    async def upload(file: UploadFile) -> dict:
        data = await file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise HTTPException(413, f"the image is over {MAX_UPLOAD >> 20} MiB; send a smaller one")
        try:
            target = await asyncio.to_thread(upload_target, data, explorer.G.resolution)
        except ImageRejected as exc:
            raise HTTPException(422, f"the upload is not a readable image (PNG, JPEG, WebP, ...): {exc}") from None
        try:
            key = projector.submit(target)
        except RuntimeError as exc:
            raise HTTPException(429, str(exc)) from None
        return {"job": key, "target": "data:image/png;base64," + base64.b64encode(png_bytes(target)).decode()}

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


def serve(explorer: Explorer, host: str, port: int) -> None:
    import uvicorn

    app = create_app(explorer, Worker(explorer), Projector(explorer))
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every keep-alive response waits 40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # before the address is printed: whoever reads it may connect at once
    except OSError as exc:
        raise SetupError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"ganflow explore: {explorer.run.export} ({explorer.G.resolution} px) on http://{shown}:{bound}/ "
          "(Ctrl-C stops it)", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)).run(sockets=[sock])


def main(argv: Sequence[str] | None = None, prog: str = "python -m ganflow.explore") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Explore a trained generator in the browser.")
    parser.add_argument("run", help="a run's export directory (holding export.json) or results/<dataset>/")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host other than this machine (anyone who reaches it can use the page)")
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
        serve(explorer, args.host, args.port)
    return 0


def command(argv: Sequence[str] | None = None) -> int:
    """The `ganflow` console script: `ganflow explore RUN ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "explore":
        sys.stderr.write("usage: ganflow explore RUN [--port N] [--host H --allow-remote] [--render SETTINGS OUT]\n")
        return 2
    return main(argv[1:], prog="ganflow explore")


if __name__ == "__main__":
    sys.exit(main())
