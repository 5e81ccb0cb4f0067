"""Video throughput: frames per second rendered, encoded, and both together, per model.

For each model (random weights: speed does not depend on training) it prints
- render: generator frames/s alone (mapping + synthesis + uint8 + tiling, in batches),
- encode: x264 frames/s alone at that frame size (one fixed frame, so no rendering),
- video: frames/s of interpolation_video and of style_mixing_video (coarse) end to end,
- progress: frames/s of progress_video over synthetic fakes grids,
and the process's peak memory after a short and after a 4x longer video, which should
match (frames are streamed, never held).

    .venv/bin/python -m benchmarks.bench_videos [--models demo,256] [--frames N] [--batch 32]

Models: `demo` is 64px with small channels (the embedded demo's size), `256` the classic
256px configuration (channel_base 16384, 512-d latents). Interpolation uses a 4x3 grid
and 60 frames for demo, a 2x1 grid and 24 frames for 256 (a 4x3 grid of 256px is 12
images per frame: seconds per frame on a CPU); --grid and --frames override them.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from ganflow import media, networks, videos  # noqa: E402
from ganflow.tables import write_tsv  # noqa: E402

# name: (Generator kwargs, interpolation grid, frames per measurement)
MODELS = {
    "demo": (dict(resolution=64, z_dim=128, w_dim=128, mapping_layers=4, channel_base=4096, channel_max=128),
             (4, 3), 60),
    "256": (dict(resolution=256, z_dim=512, w_dim=512, mapping_layers=8, channel_base=16384, channel_max=512),
            (2, 1), 24),
}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_model(name: str, frames: int | None, batch: int, grid: tuple[int, int] | None, fps: float,
                out: Path) -> None:
    kwargs, default_grid, default_frames = MODELS[name]
    cols, rows = grid or default_grid
    frames = frames or default_frames
    G = networks.Generator(**kwargs)
    cells = cols * rows
    per_call = max(1, batch // cells)

    @tf.function
    def synthesise(z: tf.Tensor) -> tf.Tensor:
        return G.synthesis(G.mapping(z, psi=0.7), noise_mode="const")

    walk = videos.LatentWalk(frames, (cells, G.z_dim), fps, seed=0)

    def render(b: int) -> np.ndarray:
        z = walk(np.arange(b * per_call, (b + 1) * per_call) % frames).reshape(-1, G.z_dim)
        return media.tile_frames(networks.to_uint8(synthesise(tf.constant(z))), cells, cols)

    render(0)  # trace once
    calls = max(1, frames // per_call)
    seconds = timed(lambda: [render(b) for b in range(calls)])
    size = (cols * G.resolution, rows * G.resolution)
    print(f"{name}: {G.resolution}px, grid {cols}x{rows} ({size[0]}x{size[1]}), {per_call} frames per call")
    rate = calls * per_call / seconds
    print(f"  render         {rate:8.1f} frames/s  ({rate * cells:.1f} images/s)")

    still = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    still = np.asarray(Image.fromarray(still).resize((size[0] // 8, size[1] // 8)).resize(size, Image.BICUBIC))
    seconds = timed(lambda: media.encode_video(lambda i: np.roll(still, i, axis=1), frames, fps, out / "enc.mp4",
                                           crf=23, preset="medium", tune="animation"))
    print(f"  encode         {frames / seconds:8.1f} frames/s  (x264 medium, crf 23, a frame that scrolls)")

    duration = frames / fps
    seconds = timed(lambda: videos.interpolation_video(G, out / "interp.mp4", grid=(cols, rows), duration=duration,
                                                       fps=fps, smoothing_sec=1.0, batch=batch))
    print(f"  interpolation  {frames / seconds:8.1f} frames/s  end to end")
    seconds = timed(lambda: videos.style_mixing_video(G, out / "mix.mp4", kind="coarse", duration=duration, fps=fps,
                                                      smoothing_sec=1.0, batch=batch))
    print(f"  style mixing   {frames / seconds:8.1f} frames/s  end to end (source + 4 destinations)")
    before = peak_mib()
    videos.interpolation_video(G, out / "long.mp4", grid=(cols, rows), duration=4 * duration, fps=fps,
                               smoothing_sec=1.0, batch=batch)
    print(f"  peak memory    {before:8.0f} MiB after {frames} frames, {peak_mib():.0f} MiB after {4 * frames} more")


def bench_progress(grids: int, out: Path) -> None:
    """Fakes grids the size training writes by default (6x4 cells of 256px)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(grids):
        small = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
        path = out / "frames" / f"fakes-{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(small).resize((1536, 1024), Image.BICUBIC).save(path)
        rows.append({"kimg": i * 4, "path": path})
    write_tsv(out / "frames.tsv", rows, ["kimg", "path"])
    info: dict = {}
    seconds = timed(lambda: info.update(videos.progress_video([out / "frames.tsv"], out / "progress.mp4")))
    print(f"progress: {grids} grids of 1536x1024 -> {info['frames']} frames {info['size'][0]}x{info['size'][1]}: "
          f"{info['frames'] / seconds:.1f} frames/s, {grids / seconds:.1f} grids/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="demo,256")
    ap.add_argument("--frames", type=int, default=None, help="frames per measurement (default: per model)")
    ap.add_argument("--batch", type=int, default=32, help="images per generator call")
    ap.add_argument("--grid", default=None, help="interpolation grid COLSxROWS for every model")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--progress-grids", type=int, default=40)
    args = ap.parse_args()
    grid = tuple(int(v) for v in args.grid.split("x")) if args.grid else None
    devices = [d.device_type for d in tf.config.list_logical_devices()]
    print(f"TensorFlow devices: {', '.join(devices)}; CPU cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            bench_model(name, args.frames, args.batch, grid, args.fps, Path(tmp))
        if args.progress_grids:
            bench_progress(args.progress_grids, Path(tmp))


if __name__ == "__main__":
    main()
