"""The whole chain on a tiny demo: two training rounds, ranking, samples, figures, videos
(the `run` fixture in conftest.py builds it once for every test file that needs it)."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import time

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from ganflow import report
from ganflow.tables import read_tsv
from ganflow.trainlog import read_log
from workflow import jobs_planned, jobs_run, snakemake

pytestmark = pytest.mark.slow  # the whole chain, two training rounds


def _frames(path):
    """(frame count, width, height, pixel format) as ffmpeg decodes the file."""
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)], capture_output=True, text=True).stderr
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    count = sum(1 for _ in reader)
    return count, meta["size"], "yuv420p" in info


def test_rank_keep_and_round_two(run):
    wd, res = run
    round1 = json.loads((res / "round-1/dataset/dataset.json").read_text())
    ranked = read_tsv(res / "round-1/rank.tsv")
    assert sorted(r["image"] for r in ranked) == sorted(round1["ids"])  # every image exactly once
    scores = [float(r["score"]) for r in ranked]
    assert scores == sorted(scores)
    n = len(ranked)
    kept = [r["image"] for r in read_tsv(res / "round-2/keep.tsv")]
    assert len(kept) == n - math.floor(0.25 * n) - math.floor(0.1 * n)
    assert set(kept) == {r["image"] for r in ranked[math.floor(0.25 * n): n - math.floor(0.1 * n)]}
    round2 = json.loads((res / "round-2/dataset/dataset.json").read_text())
    assert sorted(round2["ids"]) == sorted(kept)
    for sheet in ("lowest", "highest"):
        assert Image.open(res / f"round-2/keep-sheets/{sheet}.png").width > 0


def test_round_two_starts_from_round_one(run):
    wd, res = run
    first = {r: read_tsv(res / f"round-{r}/train/frames.tsv") for r in (1, 2)}

    def grid(row):
        return np.asarray(Image.open(wd / row["path"]).convert("RGB"), dtype=float)

    start2 = grid(first[2][0])
    # round 2's first fakes grid shows round 1's final generator, not a fresh random one
    assert np.abs(start2 - grid(first[1][-1])).mean() < 0.5 * np.abs(start2 - grid(first[1][0])).mean()
    # for later_rounds.total_kimg (0.1, from 0), not train.total_kimg (0.2): batches of 8 overshoot a little
    assert [float(first[r][-1]["kimg"]) for r in (1, 2)] == [0.2, 0.104]


def test_metrics_of_each_round(run):
    """FID, KID, precision and recall per round against that round's dataset (stand-in
    networks: the numbers only have to be well formed)."""
    _, res = run
    for r in (1, 2):
        m = json.loads((res / f"round-{r}/metrics.json").read_text())
        assert m["generated_images"] == 24 and m["real_images"] == json.loads(
            (res / f"round-{r}/dataset/dataset.json").read_text())["count"]
        assert math.isfinite(m["fid"]) and m["fid"] >= 0 and math.isfinite(m["kid"])
        assert 0 <= m["precision"] <= 1 and 0 <= m["recall"] <= 1
    overview = (res / "overview.html").read_text()  # the rounds table shows them
    assert overview.count("<h4>Rounds</h4>") == 1 and f'<td class="n">{m["precision"]:.3f}</td>' in overview


def test_training_measures_every_metrics_ticks_and_draws_the_curves(run):
    """train.metrics_ticks: 2 puts the four metrics in the log at tick 0, every second tick
    and the last (round 2's one tick), and the SWD chart gains their three panels."""
    _, res = run
    for r, ticks in ((1, ["0", "2"]), (2, ["0", "1"])):
        rows = read_log(res / f"round-{r}/train/log.csv")
        assert [row["tick"] for row in rows if row["fid"]] == ticks
        assert all(math.isfinite(float(row[k])) for row in rows if row["fid"] for k in ("fid", "kid", "precision",
                                                                                          "recall"))
        assert Image.open(res / f"report/round-{r}/swd.png").height == 4 * report.PANEL_SIZE[1]


def test_samples_figures_and_videos(run):
    wd, res = run
    seeds = sorted(p.name for p in (res / "samples/seeds").glob("*.png"))
    assert seeds == [f"seed{s:06d}.png" for s in range(6)]
    before = (res / "samples/seeds/seed000003.png").read_bytes()
    snakemake(wd, "--forcerun", "samples", "--until", "samples")
    assert (res / "samples/seeds/seed000003.png").read_bytes() == before  # same seed, same image
    width, height = Image.open(res / "figures/truncation.png").size  # 8 psis x 4 seeds, enlarged + labels
    assert 8 * 80 < width < 8 * 80 + 200 and 4 * 80 < height < 4 * 80 + 100
    for name in ("uncurated", "style_mixing", "noise_detail", "noise_components"):
        assert Image.open(res / f"figures/{name}.png").size[0] >= 16
    count, (w, h), yuv420p = _frames(res / "videos/interpolation-grid.mp4")
    assert (count, w, h, yuv420p) == (6, 32, 16, True)
    for name in ("style-mixing-coarse", "style-mixing-fine", "training-progress"):
        count, _, yuv420p = _frames(res / f"videos/{name}.mp4")
        assert count >= 2 and yuv420p


def test_projection_and_tag_edits_in_the_default_target(run):
    wd, res = run
    projection = np.load(res / "project/dataset-0/w.npz")
    assert projection["w"].shape[:2] == (1, 6) and np.isfinite(projection["mse"]).all()  # 16px: 6 ws
    target = np.asarray(Image.open(res / "project/dataset-0/target.png").convert("RGB"), dtype=float)
    sheet = Image.open(res / "project/dataset-0/sheet.png")
    assert sheet.width >= 2 * target.shape[1]
    assert [r["direction"] for r in read_tsv(res / "edits/tags.tsv")] == ["tag-smile"]
    edited = np.asarray(Image.open(res / "edits/apply/tag-smile/2/dataset-0.png").convert("RGB"), dtype=float)
    reconstruction = np.asarray(Image.open(res / "project/dataset-0/reconstruction.png").convert("RGB"), dtype=float)
    assert edited.shape == reconstruction.shape and np.abs(edited - reconstruction).mean() > 1  # the edit moved it
    overview = (res / "overview.html").read_text()
    assert "Projections" in overview and "Edits" in overview and overview.count("<img") >= 20


def test_nothing_left_to_do(run):
    wd, _ = run
    assert jobs_planned(wd) == {}


def test_touching_every_result_reruns_nothing(run):
    """A copy, a restore from backup or a sync to another disk gives every file a new mtime:
    everything a later stage reads is judged by content, so nothing reruns."""
    wd, res = run
    later = time.time()  # newer than every file, not in the future (a copy, a restore)
    for path in [res, *res.rglob("*")]:
        os.utime(path, (later, later), follow_symlinks=False)
    assert jobs_planned(wd) == {}


def test_a_job_that_makes_the_same_bytes_stops_the_cascade(run):
    """Whatever reruns, a job whose outputs come out byte-identical reruns nothing after it:
    a source image re-encoded losslessly reruns its faces job only; a new post without a
    face reruns the listing, its shard's faces and clean jobs (the verdicts come out the
    same) and the pages that count images, never the stages after clean. Runs last: it
    leaves the chain up to date on its edited source."""
    wd, res = run
    mirror = res / "mirror"
    (mirror / "original" / ".DS_Store").write_bytes(b"\0" * 16)
    later = time.time()
    for path in [mirror, *mirror.rglob("*")]:
        os.utime(path, (later, later), follow_symlinks=False)
    assert jobs_run(snakemake(wd)) == {}
    # the same pixels in other bytes: a JPEG comment segment after the start-of-image marker
    face = next(r for p in sorted((res / "faces").glob("*.tsv")) for r in read_tsv(p) if r["status"] == "face")
    source = wd / face["source"]
    data = source.read_bytes()
    assert data[:2] == b"\xff\xd8"
    comment = b"re-saved by a metadata tool"
    source.write_bytes(data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:])
    assert np.array_equal(np.asarray(Image.open(source)), np.asarray(Image.open(io.BytesIO(data))))
    assert jobs_run(snakemake(wd)) == {"faces": 1}
    # a new post whose picture holds no face
    metadata = mirror / "metadata/posts-2021.json"
    post = json.loads(metadata.read_text().splitlines()[0])
    post.update(id=9_999_001, md5="0" * 32, file_ext="png", image_width=200, image_height=200)
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    picture = mirror / f"original/{post['id'] % 1000:04d}/{post['id']}.png"
    picture.parent.mkdir(exist_ok=True)
    Image.fromarray(noise).save(picture)
    metadata.write_text(metadata.read_text() + json.dumps(post) + "\n")
    ran = jobs_run(snakemake(wd))
    assert ran.get("ids") == 1 and ran.get("faces") == 1 and ran.get("clean") == 1, ran
    assert set(ran) <= {"ids", "faces", "clean", "funnel", "edit_tagger", "report_funnel", "report_overview",
                        "all"}, ran
    assert jobs_planned(wd) == {}

