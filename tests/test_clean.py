"""clean: each rejection reason, colour-mode conversion and orientation, hashes and copy quality for dedupe."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image, ImageCms

from ganflow import clean
from ganflow.faces import FACE_COLUMNS
from ganflow.imaging import Encoding, load_srgb, load_with_encoding, peek_encoding
from ganflow.tables import read_tsv, write_tsv


def _colourful(size=96, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    arr = np.stack([x * 255, y * 255, (1 - x) * 200 + rng.integers(0, 40, (size, size))], -1)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def test_verdicts_per_kind():
    p = clean.CleanParams(min_side=64)
    assert clean.verdict(np.asarray(_colourful()), p) == ("kept", "")
    assert clean.verdict(np.asarray(_colourful(40)), p)[0] == "too_small"
    gray = np.asarray(_colourful().convert("L").convert("RGB"))
    assert clean.verdict(gray, p)[0] == "grayscale"
    flat = np.full((96, 96, 3), (200, 30, 60), np.uint8)
    flat[::7, ::7] = (205, 35, 62)  # a few specks do not make it a picture
    assert clean.verdict(flat, p)[0] == "monochrome"


def test_make_clean_modes_reasons_and_hashes(tmp_path):
    base = _colourful(128)
    files = {}

    def save(name, img, **kw):
        files[name] = tmp_path / name
        img.save(files[name], **kw)

    save("rgb.png", base)
    save("same-pixels.bmp", base)                     # other bytes, same picture
    save("cmyk.jpg", base.convert("CMYK"), quality=95)
    save("palette.png", base.convert("P"))
    save("rgba.png", base.convert("RGBA"))
    save("gray16.png", Image.fromarray((np.asarray(base.convert("L")).astype(np.uint16) * 257)))
    save("small.png", _colourful(30))
    save("icc.jpg", base, quality=95, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (tmp_path / "trunc.jpg").write_bytes((tmp_path / "cmyk.jpg").read_bytes()[:300])
    files["trunc.jpg"] = tmp_path / "trunc.jpg"
    rows = [{"crop": f"{i}-0", "id": i, "source": str(p), "path": str(p), "box": "", "score": "",
             "status": "face", "detail": ""} for i, p in enumerate(files.values())]
    rows.append({"crop": "", "id": 99, "source": "x", "path": "", "box": "", "score": "",
                 "status": "no_face", "detail": ""})
    write_tsv(tmp_path / "faces.tsv", rows, FACE_COLUMNS)
    counts = clean.make_clean(tmp_path / "faces.tsv", tmp_path / "clean.tsv", clean.CleanParams(min_side=64))
    out = {r["path"].rsplit("/", 1)[-1]: r for r in read_tsv(tmp_path / "clean.tsv")}
    assert len(out) == len(files)  # one verdict per crop; the faces-stage reject is not repeated
    verdicts = {k: v["verdict"] for k, v in out.items()}
    assert verdicts["gray16.png"] == "grayscale" and verdicts["small.png"] == "too_small"
    assert verdicts["trunc.jpg"] == "truncated"
    for name in ("rgb.png", "same-pixels.bmp", "cmyk.jpg", "palette.png", "rgba.png", "icc.jpg"):
        assert verdicts[name] == "kept", (name, out[name]["detail"])
        assert len(out[name]["phash"]) == 16 and len(out[name]["sha256"]) == 64
    assert out["rgb.png"]["sha256"] == out["same-pixels.bmp"]["sha256"]
    assert out["rgb.png"]["sha256"] != out["cmyk.jpg"]["sha256"]
    assert sum(counts.values()) == len(files)
    # colour conversions land close to the picture they encode
    ref = np.asarray(base).astype(int)
    for name in ("cmyk.jpg", "icc.jpg"):
        diff = np.abs(np.asarray(load_srgb(files[name])).astype(int) - ref).mean()
        assert diff < 12, (name, diff)
    assert np.array_equal(np.asarray(load_srgb(files["palette.png"])), np.asarray(base.convert("P").convert("RGB")))


def test_load_srgb_applies_exif_orientation(tmp_path):
    """Stored sideways (or mirrored) with an EXIF orientation, a picture decodes upright."""
    upright = _colourful(64).resize((64, 40))
    exif = Image.Exif()
    stored = {3: upright.transpose(Image.Transpose.ROTATE_180), 6: upright.transpose(Image.Transpose.ROTATE_90),
              2: upright.transpose(Image.Transpose.FLIP_LEFT_RIGHT)}
    for orientation, img in stored.items():
        exif[0x0112] = orientation
        img.save(tmp_path / f"{orientation}.png", exif=exif.tobytes())
        assert np.array_equal(np.asarray(load_srgb(tmp_path / f"{orientation}.png")), np.asarray(upright)), orientation
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "6.jpg", quality=95, exif=exif.tobytes())
    assert load_srgb(tmp_path / "6.jpg").size == (64, 40)


def test_encoding_lossless_and_estimated_jpeg_quality(tmp_path):
    img = _colourful(64)
    for q in (10, 50, 70, 85, 95, 100):
        img.save(tmp_path / f"{q}.jpg", quality=q)
        assert load_with_encoding(tmp_path / f"{q}.jpg")[1] == Encoding("jpeg", False, q)
    img.save(tmp_path / "a.png")
    img.save(tmp_path / "lossy.webp", quality=80)
    img.save(tmp_path / "lossless.webp", lossless=True)
    img.convert("RGBA").save(tmp_path / "alpha.webp", lossless=True)  # extended (VP8X) layout
    assert load_with_encoding(tmp_path / "a.png")[1] == Encoding("png", True, None)
    assert load_with_encoding(tmp_path / "lossy.webp")[1] == Encoding("webp", False, None)
    assert load_with_encoding(tmp_path / "lossless.webp")[1] == Encoding("webp", True, None)
    assert load_with_encoding(tmp_path / "alpha.webp")[1] == Encoding("webp", True, None)
    assert peek_encoding((tmp_path / "70.jpg").read_bytes()) == Encoding("jpeg", False, 70)
    assert peek_encoding(b"not an image") is None


def test_upscaled_crops_have_little_detail_in_the_top_octave(tadne_grid):
    grid = Image.open(tadne_grid).convert("RGB")
    for k in (0, 14, 35):
        r, c = divmod(k, 6)
        face = grid.crop((c * 512 + 128, r * 512 + 96, c * 512 + 384, r * 512 + 352))
        assert clean.top_octave_share(face) > 0.2, k
        assert clean.top_octave_share(face.resize((512, 512), Image.LANCZOS)) < clean.UPSCALED_BELOW, k
        assert clean.top_octave_share(face.resize((512, 512), Image.BICUBIC)) < clean.UPSCALED_BELOW, k
    assert clean.top_octave_share(Image.new("RGB", (64, 64), (9, 9, 9))) == 1.0  # nothing to judge


def test_source_encoding_is_carried_and_an_empty_shard_is_no_error(tmp_path):
    _colourful(128).save(tmp_path / "a.png")
    row = {"crop": "1-0", "id": 1, "source": "src/1.jpg", "path": str(tmp_path / "a.png"), "box": "0,0,128,128",
           "score": "1.0", "status": "face", "detail": "", "format": "jpeg", "lossless": 0, "quality": 88}
    write_tsv(tmp_path / "faces.tsv", [row], FACE_COLUMNS)
    clean.make_clean(tmp_path / "faces.tsv", tmp_path / "clean.tsv", clean.CleanParams())
    (out,) = read_tsv(tmp_path / "clean.tsv")
    assert (out["format"], out["lossless"], out["quality"], out["upscaled"]) == ("jpeg", "0", "88", "0")
    write_tsv(tmp_path / "empty.tsv", [], FACE_COLUMNS)
    assert clean.make_clean(tmp_path / "empty.tsv", tmp_path / "clean-empty.tsv", clean.CleanParams()) == {}
    assert read_tsv(tmp_path / "clean-empty.tsv") == []


def test_source_hash_is_carried_for_dedupe_and_the_log_counts_verdicts(tmp_path, caplog, tadne_grid):
    _colourful(128).save(tmp_path / "a.png")
    _colourful(30).save(tmp_path / "small.png")
    face = Image.open(tadne_grid).convert("RGB").crop((128, 96, 384, 352))
    face.resize((512, 512), Image.LANCZOS).save(tmp_path / "big.png")  # enlarged 2x
    base = {"source": "src/1.jpg", "box": "10,20,128,128", "status": "face", "source_size": "640x480",
            "source_phash": "0123456789abcdef", "source_centre_phash": "fedcba9876543210",
            "face_phash": "00ff00ff00ff00ff", "face_rgb": "10,20,30"}
    rows = [dict(base, crop=f"{i}-0", id=i, path=str(tmp_path / name))
            for i, name in enumerate(("a.png", "small.png", "big.png"))]
    rows.append(dict(base, crop="3-9", id=3, path=str(tmp_path / "a.png"), status="over_max_faces"))
    write_tsv(tmp_path / "0005.tsv", rows, FACE_COLUMNS)
    with caplog.at_level(logging.INFO, logger="ganflow.clean"):
        clean.make_clean(tmp_path / "0005.tsv", tmp_path / "clean.tsv", clean.CleanParams(min_side=64))
    out = read_tsv(tmp_path / "clean.tsv")
    assert [r["crop"] for r in out] == ["0-0", "1-0", "2-0"]  # a face beyond max_faces is not judged
    assert all([r[k] for k in ("source_size", "source_phash", "source_centre_phash", "face_phash", "face_rgb", "box")]
               == ["640x480", "0123456789abcdef", "fedcba9876543210", "00ff00ff00ff00ff", "10,20,30", "10,20,128,128"]
               for r in out)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("clean 0005:")]
    assert "3 crops judged in " in line and " s/crop): 2 kept (1 look upscaled); rejected: too_small 1" in line


def test_verdicts_on_big_crops_equal_those_on_every_pixel(tadne_grid, monkeypatch):
    """verdict() measures a sample of a big crop's pixels; for art, a grayscale copy, flat
    colour with sparse specks and noise near each threshold, the verdict and its numbers are
    those of all the pixels."""
    rng = np.random.default_rng(1)
    art = np.asarray(Image.open(tadne_grid).convert("RGB").crop((512, 0, 1024, 512)).resize((1536, 1536)))
    flat = np.full((1200, 1600, 3), (200, 30, 60), np.uint8)
    specks = flat.copy()
    specks[::7, ::7] = (255, 255, 255)  # 2% of the pixels, far from the rest

    def noisy(base, sigma, shared):  # shared noise keeps a gray picture gray
        noise = rng.normal(0, sigma, base.shape[:2] + ((1,) if shared else (3,)))
        return np.clip(base + noise, 0, 255).astype(np.uint8)

    gray = np.repeat(art.mean(axis=2, keepdims=True), 3, 2)
    p = clean.CleanParams()
    cases = {"art": (art, "kept"), "gray art": (gray.astype(np.uint8), "grayscale"),
             "gray art, chroma ~3.6": (noisy(gray, 2.4, False), "grayscale"),
             "gray art, chroma ~4.4": (noisy(gray, 3.0, False), "kept"),
             "specks": (specks, "kept"), "faint specks": (flat + (specks > 250) * np.uint8(3), "monochrome"),
             "flat, std 5.5": (noisy(flat, 5.5, True), "monochrome"), "flat, std 6.5": (noisy(flat, 6.5, True), "kept")}
    sampled = {name: clean.verdict(rgb, p) for name, (rgb, _) in cases.items()}
    assert clean.verdict_pixels(art).shape == (clean.VERDICT_PIXELS, 3) < art.reshape(-1, 3).shape
    monkeypatch.setattr(clean, "VERDICT_PIXELS", 1 << 40)
    for name, (rgb, expected) in cases.items():
        full = clean.verdict(rgb, p)
        assert sampled[name][0] == full[0] == expected, (name, sampled[name], full)
        numbers = [float(s.split()[-3]) for s in (sampled[name][1], full[1]) if s]
        assert not numbers or abs(numbers[0] - numbers[1]) < 0.05, (name, sampled[name], full)
