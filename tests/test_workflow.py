"""End to end: the data stages of the real DAG on a tiny demo, reruns by content, a bad config."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ganflow.tables import read_tsv
from workflow import REPO, jobs_planned, jobs_run, snakemake, tiny_config


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, cascade_path):
    """One full run of the data stages on the tiny demo, shared by the tests below."""
    wd = tmp_path_factory.mktemp("wf")
    tiny_config(wd, cascade_path)
    snakemake(wd, "data")
    return wd


def _rows(wd: Path, stage: str) -> list[dict]:
    return [r for p in sorted((wd / "results/demo" / stage).glob("[0-9]*.tsv")) for r in read_tsv(p)]


def test_data_stages_end_to_end(demo_run):
    wd = demo_run
    res = wd / "results/demo"
    truth = {r["id"]: r for r in read_tsv(res / "mirror/truth.tsv")}
    images = _rows(wd, "images")
    assert len(images) >= 8, f"only {len(images)} final images"
    for row in images:
        img = Image.open(wd / row["path"])
        assert img.size == (32, 32) and img.mode == "RGB" and img.format == "JPEG"
        assert truth[row["id"]]["kind"] not in {"grayscale", "monochrome", "tiny", "truncated", "not_image"}
    # nothing kept is lost between stages: every unique kept crop becomes exactly one image
    unique = {r["crop"] for r in read_tsv(res / "dedupe.tsv") if r["keep"] == "1"}
    assert {r["image"] for r in images} == unique
    kept = {r["crop"] for r in _rows(wd, "clean") if r["verdict"] == "kept"}
    assert {r["crop"] for r in read_tsv(res / "dedupe.tsv")} == kept
    crops = {r["crop"] for r in _rows(wd, "faces") if r["status"] == "face"}
    assert {r["crop"] for r in _rows(wd, "clean")} == crops
    selected = {r["id"] for r in _rows(wd, "ids")}
    assert {r["id"] for r in _rows(wd, "faces")} == selected
    # junk is caught with its reason somewhere along the way
    reasons = {r["reason"] for r in read_tsv(res / "ids/rejected.tsv")}
    assert {"malformed_json", "bad_id", "bad_file_ext", "missing_file"} <= reasons
    funnel = {r["stage"]: int(r["count"]) for r in read_tsv(res / "report/funnel.tsv") if r["count"]}
    assert funnel["final"] == len(images) and funnel["found"] == len(selected)
    assert funnel["posts"] >= funnel["selected"] >= funnel["found"] >= funnel["with_face"]
    for stage in ("no-face", "faces", "over-max-faces", "rejected", "duplicates", "images"):
        assert Image.open(res / f"report/contact-{stage}.png").size[0] > 0


def _fates(wd: Path) -> dict[str, set[str]]:
    """Every reason (or 'final') each source id met on its way through the stages."""
    res = wd / "results/demo"
    fates: dict[str, set[str]] = {}
    for r in read_tsv(res / "ids/rejected.tsv"):
        fates.setdefault(r["id"], set()).add(r["reason"])
    for r in _rows(wd, "faces"):
        if r["status"] != "face":
            fates.setdefault(r["id"], set()).add(r["status"])
    for r in _rows(wd, "clean"):
        if r["verdict"] != "kept":
            fates.setdefault(r["id"], set()).add(r["verdict"])
    crop_ids = {r["crop"]: r["id"] for r in _rows(wd, "clean")}
    for r in read_tsv(res / "dedupe.tsv"):
        if r["keep"] != "1":
            fates.setdefault(crop_ids[r["crop"]], set()).add(f"{r['kind']}_duplicate")
    for r in _rows(wd, "images"):
        fates.setdefault(r["id"], set()).add("final")
    return fates


def test_every_junk_kind_meets_its_reason(demo_run):
    wd = demo_run
    truth = read_tsv(wd / "results/demo/mirror/truth.tsv")
    fates = _fates(wd)
    kinds: dict[str, list[set[str]]] = {}
    for r in truth:
        kinds.setdefault(r["kind"], []).append(fates.get(r["id"], set()))
    assert all(f == {"truncated"} for f in kinds["truncated"])
    assert all(f == {"undecodable"} for f in kinds["not_image"])
    assert all(f == {"missing_file"} for f in kinds["missing"])
    assert all(f <= {"too_small", "no_face"} and f for f in kinds["tiny"])
    assert all(f <= {"grayscale", "no_face"} and f for f in kinds["grayscale"])
    assert all(f <= {"monochrome", "no_face"} and f for f in kinds["monochrome"])
    # odd colour modes decode and go on like any other picture
    for kind in ("cmyk", "palette", "png16"):
        for f in kinds[kind]:
            assert "undecodable" not in f and "truncated" not in f, (kind, f)
    assert any("final" in f for f in kinds["cmyk"] + kinds["palette"])
    # filtered ratings never get as far as face detection
    selected = {r["id"] for r in _rows(wd, "ids")}
    assert not {r["id"] for r in truth if r["kind"] in ("rating_q", "rating_e")} & selected
    # exact duplicates: one copy survives per picture. (Near duplicates are re-scaled
    # sources whose detector boxes shift, so their crops need not be near-identical; the
    # dedupe unit tests cover near-duplicate clustering on planted hashes.)
    for r in truth:
        if r["kind"] == "exact_dup" and "final" in fates.get(r["dup_of"], set()):
            assert "final" not in fates.get(r["id"], set()), r
    malformed = [r for r in read_tsv(wd / "results/demo/ids/rejected.tsv")
                 if r["reason"] in ("malformed_json", "bad_id", "bad_file_ext")]
    assert len(malformed) == len(kinds["malformed"])


def _outputs(results: Path) -> dict[str, bytes]:
    """Every stage's output under results/demo (the generated mirror aside), by relative path;
    the source listings without their file times (those of this copy's mirror)."""
    out = {p.relative_to(results).as_posix(): p.read_bytes() for p in sorted(results.rglob("*"))
           if p.is_file() and not p.relative_to(results).as_posix().startswith("mirror/")}
    for name in [n for n in out if n.startswith("ids/sources/")]:
        rows = read_tsv(results / name)
        assert rows and all(r["mtime_ns"] and r["ctime_ns"] for r in rows)
        out[name] = [(r["path"], r["size"], r["sha256"]) for r in rows]
    return out


@pytest.mark.slow
def test_killed_run_recovers_with_the_documented_commands(demo_run, tmp_path, cascade_path):
    """kill -9 of snakemake and its jobs mid-run (a lost login node); then only what the README
    says: the same command (refused: locked), `snakemake --unlock`, the same command. The result
    equals the uninterrupted run's, byte for byte. (Runs before the test below edits demo_run.)"""
    reference = demo_run
    tiny_config(tmp_path, cascade_path)
    shutil.copyfile(reference / "cascade.xml", tmp_path / "cascade.xml")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
           str(tmp_path / "config.yaml"), "--directory", str(tmp_path), "--cores", "2", "data"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "results/demo/faces").glob("*.tsv")):  # mid-run: faces under way
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    time.sleep(random.uniform(0, 1.5))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    again = snakemake(tmp_path, "data", check=False)
    assert again.returncode != 0 and "--unlock" in again.stdout + again.stderr  # Snakemake's own advice
    assert f"left by a run that no longer runs (pid {proc.pid} on" in again.stderr  # and which case it is
    snakemake(tmp_path, "--unlock")
    snakemake(tmp_path, "data")
    assert _outputs(tmp_path / "results/demo") == _outputs(reference / "results/demo")
    assert jobs_planned(tmp_path, "data") == {}


def test_rerun_only_what_changed(demo_run):
    wd = demo_run
    assert jobs_planned(wd, "data") == {}, "a second run right after a complete one must have nothing to do"
    sources = [wd / r["path"] for r in _rows(wd, "ids")]
    for p in sources:
        os.utime(p, None)
    assert jobs_planned(wd, "data") == {}, "touching every source image must rerun nothing"
    # edit one decodable face image: its shard's faces/clean/images rerun, plus the global stages
    row = next(r for r in _rows(wd, "faces") if r["status"] == "face")
    src = wd / row["source"]
    original = Image.open(src)
    arr = np.asarray(original.convert("RGB")).copy()
    arr[:4, :4] = 255 - arr[:4, :4]
    Image.fromarray(arr).save(src, format=original.format)
    assert jobs_planned(wd, "data") == {"faces": 1}  # a dry run sees the first stage to run
    res = wd / "results/demo"
    inputs = {p.relative_to(res): p.read_bytes() for stage in ("clean", "dedupe") for p in (res / stage).glob("*.tsv")}
    made = {p.name: p.stat().st_mtime_ns for p in (res / "images").glob("*.tsv")}
    ran = jobs_run(snakemake(wd, "data"))
    assert ran.get("faces") == 1 and ran.get("clean") == 1 and ran.get("dedupe") == 1
    assert "ids" not in ran and "demo" not in ran
    assert jobs_planned(wd, "data") == {}
    # once dedupe reran, only the shards whose clean verdicts or dedupe slice changed made their images again
    changed = {path.name for path, raw in inputs.items() if (res / path).read_bytes() != raw}
    assert changed == {name for name, t in made.items() if (res / "images" / name).stat().st_mtime_ns != t}
    assert len(changed) < len(made)


def test_every_rule_another_reads_is_a_checkpoint_read_through_made(tmp_path, cascade_path):
    """The cascade stops at a job that made the same bytes only where its maker is a
    checkpoint and its reader declares it with made() (rules/common.smk): checked on the
    rule graph of a run with every edit method, so a new rule cannot slip past it."""
    tiny_config(tmp_path, cascade_path, **{"edit.methods": ["sefa", "ganspace", "tags"]})
    dot = snakemake(tmp_path, "--forceall", "--rulegraph").stdout
    names = dict(re.findall(r'(\d+)\[label = "(\w+)"', dot))
    edges = {(names[a], names[b]) for a, b in re.findall(r"(\d+) -> (\d+)", dot)}
    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    headers = list(re.finditer(r"^ *(rule|checkpoint) (\w+):$", text, re.M))
    rules = {m.group(2): (m.group(1), text[m.end():headers[i + 1].start() if i + 1 < len(headers) else None])
             for i, m in enumerate(headers)}
    downloads = {"faces_cascade", "project_vgg16"}  # outside results/: their readers checksum them
    assert len(edges) > 40 and {"ids", "train", "edit_ganspace", "report_overview"} <= set(names.values())
    for maker, reader in edges:
        if maker in downloads or reader in ("all", "data", "latent"):
            continue
        assert rules[maker][0] == "checkpoint", f"{maker} is read by {reader} but is no checkpoint"
        const = f"{reader.upper()}_INPUT"
        assert f"unpack({const})" in rules[reader][1] and f"made={const}.digest" in rules[reader][1], reader


def test_later_rounds_start_from_the_previous_model_unless_told_to_start_afresh(tmp_path, cascade_path):
    """With later_rounds.start: previous round 2 declares round 1's export as its input (so a
    retrained round 1 retrains it); with scratch it does not."""
    def round_2_inputs(**overrides):
        tiny_config(tmp_path, cascade_path, **overrides)
        out = snakemake(tmp_path, "--dry-run").stdout
        jobs = [block for block in out.split("\n\n") if "checkpoint train:" in block and "wildcards: r=2" in block]
        assert len(jobs) == 1, out[-3000:]
        return next(line for line in jobs[0].splitlines() if line.strip().startswith("input:"))

    assert "results/demo/round-1/train/export.json" in round_2_inputs()
    assert "round-1/train" not in round_2_inputs(**{"later_rounds": {"start": "scratch"}})


def test_tag_edits_of_a_folder_without_tags_are_refused_before_anything_runs(tmp_path, cascade_path):
    """Tag directions need tagged images: asked for on a folder with no .txt tag files, the
    run stops at once naming the fix; by default the edits leave them out."""
    art = tmp_path / "art"
    art.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(art / "a.png")
    config = yaml.safe_load(tiny_config(tmp_path, cascade_path, source={"kind": "folder", "root": "art"}).read_text())
    assert "tags" in config["edit"]["methods"]
    proc = snakemake(tmp_path, "--dry-run", "results/demo/ids/summary.json", check=False)
    assert proc.returncode != 0 and "config key edit.methods: tags needs tagged images, but source.root art holds " \
        "no .txt tag file beside any image; set edit.methods: [sefa, ganspace]" in proc.stdout + proc.stderr
    config["edit"] = {k: v for k, v in config["edit"].items() if k not in ("methods", "apply")}  # the defaults
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    planned = jobs_planned(tmp_path)
    assert "edit_sefa" in planned and "edit_tagger" not in planned, sorted(planned)
    (art / "a.txt").write_text("smile\n")  # one tagged image: tags are possible again
    assert "edit_tagger" in jobs_planned(tmp_path)


def test_folder_source_reruns_ids_for_new_or_removed_files_and_one_shard_for_an_edit(tmp_path, cascade_path):
    """No source image is a Snakemake input: a touch reruns nothing, an edit only its
    shard's faces job, a file added or removed the ids stage (the folders' times)."""
    art = tmp_path / "art"
    rng = np.random.default_rng(0)
    for i in range(8):
        (art / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(art / f"d{i % 2}" / f"{i}.png")
    tiny_config(tmp_path, cascade_path, source={"kind": "folder", "root": "art"},
                **{"faces.enabled": False, "edit.methods": ["sefa"], "edit.apply": []})  # no tags: no sidecars
    targets = [f"results/demo/faces/{shard}.tsv" for shard in ("0000", "0001")]
    snakemake(tmp_path, *targets)
    assert jobs_planned(tmp_path, *targets) == {}
    for p in art.rglob("*.png"):
        os.utime(p, ns=(10**18, 10**18))
    assert jobs_planned(tmp_path, *targets) == {}, "touching every source must rerun nothing"
    # a touched folder or a .DS_Store reruns the listing, which comes out the same: nothing else
    (art / "d0" / ".DS_Store").write_bytes(b"\0" * 8)
    for p in [art, *art.rglob("*")]:
        os.utime(p, ns=(2 * 10**18, 2 * 10**18))
    assert jobs_run(snakemake(tmp_path, *targets)) == {"ids": 1}
    edited = art / "d1" / "3.png"
    edited.write_bytes(edited.read_bytes() + b"\0")
    assert jobs_planned(tmp_path, *targets) == {"faces": 1}
    snakemake(tmp_path, *targets)
    assert jobs_planned(tmp_path, *targets) == {}
    shutil.copyfile(edited, art / "d0" / "new.png")
    assert "ids" in jobs_planned(tmp_path, *targets)
    manifests = {t: (tmp_path / t).stat().st_mtime_ns for t in targets}
    snakemake(tmp_path, *targets)
    assert "art/d0/new.png" in {r["path"] for r in _rows(tmp_path, "ids")}
    # ids reran; only the shard that got the file reran its faces job
    assert sum((tmp_path / t).stat().st_mtime_ns != m for t, m in manifests.items()) == 1
    (art / "d1" / "5.png").unlink()
    assert "ids" in jobs_planned(tmp_path, *targets)


def test_bad_config_stops_before_any_job(tmp_path, cascade_path):
    tiny_config(tmp_path, cascade_path, **{"faces.min_sise": 40})
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    assert "config key faces.min_sise is not known" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def _reversed_keys(value):
    """The same config with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {k: _reversed_keys(value[k]) for k in reversed(list(value))}
    return value


def test_reordered_config_keys_rerun_nothing(demo_run):
    wd = demo_run
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    (wd / "reordered.yaml").write_text(yaml.safe_dump(_reversed_keys(cfg), sort_keys=False))
    assert jobs_planned(wd, "data", "--configfile", str(wd / "reordered.yaml")) == {}


def test_a_moved_or_missing_source_is_not_silently_reused(demo_run, tmp_path):
    wd = demo_run
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    moved = wd / "moved.yaml"
    moved.write_text(yaml.safe_dump({**cfg, "source": {**cfg["source"], "root": "no/such/mirror"}}))
    proc = snakemake(wd, "data", "--configfile", str(moved), "--dry-run", check=False)
    assert proc.returncode != 0 and "config key source.root: no/such/mirror is not a directory" in proc.stdout + proc.stderr
    copy = tmp_path / "mirror"
    shutil.copytree(wd / "results/demo/mirror", copy)
    moved.write_text(yaml.safe_dump({**cfg, "source": {**cfg["source"], "root": str(copy),
                                                       "metadata": ["metadata/posts-20*.jsonl"]}}))
    proc = snakemake(wd, "data", "--configfile", str(moved), "--dry-run", check=False)
    assert proc.returncode != 0 and ("config key source.metadata: 'metadata/posts-20*.jsonl' matches no file"
                                     in proc.stdout + proc.stderr)
    # the same files in another place are another source: ids (and what follows) rerun
    moved.write_text(yaml.safe_dump({**cfg, "source": {**cfg["source"], "root": str(copy)}}))
    assert "ids" in jobs_planned(wd, "data", "--configfile", str(moved))
