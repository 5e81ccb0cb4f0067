"""Near-duplicate clustering: exact against brute force, deterministic keeper, manifests."""

from __future__ import annotations

import itertools
import logging
import random

import numpy as np
import pytest

from ganflow import dedupe as dd
from ganflow.runlog import SetupError
from ganflow.tables import read_tsv, write_tsv

CLEAN_COLUMNS = ["crop", "id", "source", "path", "box", "width", "height", "verdict", "detail", "sha256", "phash",
                 "format", "lossless", "quality", "upscaled", "source_size", "source_phash", "source_centre_phash",
                 "face_phash", "face_rgb"]


def _popcount(x: int) -> int:
    return bin(x).count("1")


def _brute_partition(hashes: list[int | None], sha: list[str], t: int) -> set[frozenset[int]]:
    """Reference: all pairs, plain Python union-find."""
    parent = list(range(len(hashes)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(len(hashes)), 2):
        same_sha = sha[i] and sha[i] == sha[j]
        close = hashes[i] is not None and hashes[j] is not None and _popcount(hashes[i] ^ hashes[j]) <= t
        if same_sha or close:
            parent[root(i)] = root(j)
    groups: dict[int, set[int]] = {}
    for i in range(len(hashes)):
        groups.setdefault(root(i), set()).add(i)
    return {frozenset(g) for g in groups.values()}


def _clustered(n_bases: int, per_base: int, max_flips: int, seed: int) -> list[int]:
    """Hashes in tight families, so that many pairs sit near any threshold."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_bases):
        base = rng.getrandbits(64)
        out.append(base)
        for _ in range(per_base):
            flips = rng.sample(range(64), rng.randint(0, max_flips))
            out.append(base ^ sum(1 << b for b in flips))
    rng.shuffle(out)
    return out


def _partition(rows: list[dict]) -> set[frozenset[int]]:
    groups: dict[str, set[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r["cluster"], set()).add(i)
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("threshold", [0, 1, 3, 4, 6])
def test_clusters_equal_brute_force(threshold):
    hashes = _clustered(30, 6, max_flips=8, seed=threshold)
    n = len(hashes)
    sha = [f"s{i}" for i in range(n)]
    sha[5] = sha[70] = "same-pixels"  # an exact duplicate with unrelated hashes still joins
    hashes[9] = None
    crops = [f"{i}-0" for i in range(n)]
    phash = [None if h is None else f"{h:016x}" for h in hashes]
    rows = dd.find_clusters(crops, sha, phash, [100] * n, threshold)
    assert _partition(rows) == _brute_partition(hashes, sha, threshold)
    assert len({r["cluster"] for r in rows}) == sum(r["keep"] for r in rows)


@pytest.mark.parametrize("layout", [(5, 1), (6, 2), (7, 3), (9, 5)])
def test_near_pairs_exact_for_every_block_layout(monkeypatch, layout):
    hashes = np.unique(np.array(_clustered(40, 8, max_flips=7, seed=1), dtype=np.uint64))
    monkeypatch.setattr(dd, "block_layout", lambda m, t: layout)
    a, b = dd.near_pairs(hashes, 4)
    got = set(zip(a.tolist(), b.tolist()))
    want = {(i, j) for i, j in itertools.combinations(range(len(hashes)), 2)
            if _popcount(int(hashes[i]) ^ int(hashes[j])) <= 4}
    assert len(want) > 50
    assert got == want


def test_block_layout_is_a_valid_pigeonhole_and_grows_keys_with_size():
    for m in (10, 10_000, 700_000, 10_000_000):
        for t in (1, 4, 8):
            blocks, agree = dd.block_layout(m, t)
            assert blocks - agree == t and agree >= 1
    assert dd.block_layout(700_000, 4)[1] > dd.block_layout(1_000, 4)[1]


def test_keeper_is_largest_then_smallest_id_whatever_the_order():
    base = 0x0123456789ABCDEF
    crops = ["9-0", "10-0", "11-0", "12-0"]
    phash = [f"{base:016x}", f"{base ^ 1:016x}", f"{base ^ 3:016x}", f"{base ^ 0xFF:016x}"]
    areas = [400, 400, 100, 900]  # 12-0 is biggest but 8 bits away from everything
    sha = ["a", "b", "c", "d"]
    for perm in itertools.permutations(range(4)):
        rows = dd.find_clusters([crops[i] for i in perm], [sha[i] for i in perm],
                                [phash[i] for i in perm], [areas[i] for i in perm], 4)
        by = {r["crop"]: r for r in rows}
        assert [r["crop"] for r in rows] == [crops[i] for i in perm]
        assert by["10-0"] == {"crop": "10-0", "cluster": "10-0", "keep": 1, "kind": "unique", "distance": 0,
                              "why": "equal: smallest crop id"}
        assert by["9-0"] == {"crop": "9-0", "cluster": "10-0", "keep": 0, "kind": "near", "distance": 1, "why": ""}
        assert by["11-0"]["cluster"] == "10-0" and by["11-0"]["distance"] == 1
        assert by["12-0"] == {"crop": "12-0", "cluster": "12-0", "keep": 1, "kind": "unique", "distance": 0,
                              "why": ""}


@pytest.mark.parametrize("winner, loser, why", [
    ({"lossless": 1, "upscaled": 1, "quality": 0, "area": 100}, {"lossless": 0, "upscaled": 0, "quality": 98, "area": 400},
     "lossless over lossy"),
    ({"lossless": 0, "upscaled": 0, "quality": 70, "area": 100}, {"lossless": 0, "upscaled": 1, "quality": 95, "area": 400},
     "native pixels over upscaled"),
    ({"lossless": 0, "upscaled": 0, "quality": 95, "area": 100}, {"lossless": 0, "upscaled": 0, "quality": 70, "area": 400},
     "jpeg q95 > q70"),
    ({"lossless": 0, "upscaled": 0, "quality": 70, "area": 100}, {"lossless": 0, "upscaled": 0, "quality": 0, "area": 400},
     "jpeg q70 > unknown quality"),
    ({"lossless": 1, "upscaled": 0, "quality": 0, "area": 400}, {"lossless": 1, "upscaled": 0, "quality": 0, "area": 100},
     "larger: 400 > 100 px"),
])
def test_keeper_is_the_best_copy_and_says_why(winner, loser, why):
    """Lossless over lossy, native over upscaled, higher JPEG quality, then size, in that order."""
    h = "0123456789abcdef"
    copies = {"1-0": loser, "2-0": winner, "3-0": loser}  # the winner is neither first nor smallest id
    for perm in itertools.permutations(copies):
        rows = dd.find_clusters(list(perm), ["a", "b", "c"], [h] * 3, [copies[c]["area"] for c in perm], 4,
                                lossless=[copies[c]["lossless"] for c in perm],
                                upscaled=[copies[c]["upscaled"] for c in perm],
                                quality=[copies[c]["quality"] for c in perm])
        by = {r["crop"]: r for r in rows}
        assert by["2-0"]["keep"] == 1 and by["2-0"]["why"] == why
        assert by["1-0"]["cluster"] == by["3-0"]["cluster"] == "2-0" and by["1-0"]["why"] == ""


def test_transitive_chain_exact_kind_and_missing_hash():
    a = 0xFFFF_0000_FFFF_0000
    b = a ^ 0b111  # 3 bits from a
    c = b ^ 0b111000  # 3 bits from b, 6 from a
    crops = ["1-0", "2-0", "3-0", "4-0", "5-0", "6-0"]
    phash = [f"{a:016x}", f"{b:016x}", f"{c:016x}", f"{a:016x}", "", "zz"]
    sha = ["x", "y", "z", "x", "y", "q"]  # 4-0 has 1-0's pixels; 5-0 has 2-0's pixels and no hash
    areas = [500, 100, 100, 500, 100, 100]
    rows = {r["crop"]: r for r in dd.find_clusters(crops, sha, phash, areas, 4)}
    assert {r["cluster"] for k, r in rows.items() if k != "6-0"} == {"1-0"}
    assert rows["3-0"]["distance"] == 6 and rows["3-0"]["kind"] == "near"
    assert rows["4-0"]["kind"] == "exact" and rows["4-0"]["distance"] == 0
    assert rows["5-0"]["kind"] == "near" and rows["5-0"]["distance"] == ""
    assert rows["6-0"] == {"crop": "6-0", "cluster": "6-0", "keep": 1, "kind": "unique", "distance": 0, "why": ""}
    assert rows["1-0"]["why"] == "equal: smallest crop id"  # 4-0, its exact copy, is as good


def test_identical_hashes_different_pixels_are_near_at_zero():
    h = "00ff00ff00ff00ff"
    rows = dd.find_clusters(["1-0", "2-0", "3-0"], ["a", "b", "c"], [h, h, int(h, 16)], [10, 20, 30], 0)
    assert [r["cluster"] for r in rows] == ["3-0"] * 3
    assert [(r["kind"], r["distance"]) for r in rows] == [("near", 0), ("near", 0), ("unique", 0)]


def test_many_identical_hashes_do_not_go_quadratic():
    n = 30_000  # 4.5e8 pairs if compared pairwise; collapsed to one distinct hash first
    rows = dd.find_clusters([f"{i}-0" for i in range(n)], [f"{i}" for i in range(n)],
                            ["0123456789abcdef"] * n, [1] * n, 4)
    assert {r["cluster"] for r in rows} == {"0-0"}


def test_connected_components_matches_reference():
    rng = np.random.default_rng(3)
    n = 2000
    a = rng.integers(0, n, 1500)
    b = rng.integers(0, n, 1500)
    chain = np.arange(500, 900)  # a long path, the worst case for label propagation
    a, b = np.r_[a, chain[:-1]], np.r_[b, chain[1:]]
    labels = dd.connected_components(n, a, b)
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for x, y in zip(a.tolist(), b.tolist()):
        parent[root(x)] = root(y)
    smallest: dict[int, int] = {}
    for i in range(n):
        smallest.setdefault(root(i), i)
    assert labels.tolist() == [smallest[root(i)] for i in range(n)]


def test_bad_arguments():
    with pytest.raises(ValueError, match="equal length"):
        dd.find_clusters(["a"], [], ["0" * 16], [1], 4)
    with pytest.raises(ValueError, match="equal length"):
        dd.find_clusters(["a"], ["s"], ["0" * 16], [1], 4, quality=[1, 2])
    with pytest.raises(ValueError, match="threshold"):
        dd.find_clusters(["a"], ["s"], ["0" * 16], [1], 40)
    assert dd.find_clusters([], [], [], [], 4) == []
    assert dd.parse_phash("0123456789ABCDEF") == 0x0123456789ABCDEF
    assert dd.parse_phash("123") is None and dd.parse_phash("g" * 16) is None and dd.parse_phash(-1) is None


def _clean(path, rows):
    write_tsv(path, rows, CLEAN_COLUMNS)


def _row(crop, phash, sha, size=100, verdict="kept"):
    return {"crop": crop, "id": crop.split("-")[0], "width": size, "height": size, "verdict": verdict,
            "sha256": sha if verdict == "kept" else "", "phash": phash if verdict == "kept" else ""}


def test_dedupe_writes_global_and_every_shard(tmp_path):
    h = 0x5555_AAAA_5555_AAAA
    _clean(tmp_path / "clean/0000.tsv", [_row("10-0", f"{h:016x}", "p", 200), _row("20-0", "", "", verdict="too_small")])
    _clean(tmp_path / "clean/0001.tsv", [_row("11-0", f"{h ^ 0b11:016x}", "q", 100),
                                         _row("21-0", f"{~h & (2**64 - 1):016x}", "r")])
    _clean(tmp_path / "clean/0002.tsv", [_row("12-0", "", "", verdict="grayscale")])
    manifests = [tmp_path / f"clean/000{i}.tsv" for i in range(3)]
    summary = dd.dedupe(manifests, tmp_path / "dedupe.tsv", tmp_path / "dedupe", threshold=4)

    everything = read_tsv(tmp_path / "dedupe.tsv")
    assert [r["crop"] for r in everything] == ["10-0", "11-0", "21-0"]  # only kept crops, in order
    assert read_tsv(tmp_path / "dedupe/0001.tsv") == [
        {"crop": "11-0", "cluster": "10-0", "keep": "0", "kind": "near", "distance": "2", "why": ""},
        {"crop": "21-0", "cluster": "21-0", "keep": "1", "kind": "unique", "distance": "0", "why": ""}]
    assert read_tsv(tmp_path / "dedupe/0000.tsv") == [
        {"crop": "10-0", "cluster": "10-0", "keep": "1", "kind": "unique", "distance": "0",
         "why": "larger: 40000 > 10000 px"}]
    assert (tmp_path / "dedupe/0002.tsv").read_text() == "crop\tcluster\tkeep\tkind\tdistance\twhy\n"
    assert summary["crops"] == 3 and summary["kept"] == 2 and summary["removed_near"] == 1
    assert summary["shards"] == 3 and summary["largest_cluster"] == 2


def test_dedupe_counts_unhashed_rows_and_refuses_foreign_tables(tmp_path, caplog):
    _clean(tmp_path / "a.tsv", [_row("1-0", "not-a-hash", "s1"), _row("2-0", "", "s1")])
    summary = dd.dedupe([tmp_path / "a.tsv"], tmp_path / "d.tsv", tmp_path / "d", threshold=4)
    assert summary["unhashed"] == 2 and summary["removed_exact"] == 1
    assert "no valid phash" in caplog.text
    write_tsv(tmp_path / "b.tsv", [{"crop": "1-0", "verdict": "kept"}], ["crop", "verdict"])
    with pytest.raises(SetupError, match=r"b\.tsv lacks column\(s\) width, height, sha256, phash"):
        dd.dedupe([tmp_path / "b.tsv"], tmp_path / "d.tsv", tmp_path / "d", threshold=4)


def test_dedupe_stops_when_no_crop_is_left_naming_the_keys(tmp_path):
    """An empty shard is normal; an empty dataset is a setup to fix, said at the stage that empties it."""
    _clean(tmp_path / "0000.tsv", [])
    _clean(tmp_path / "0001.tsv", [])
    with pytest.raises(SetupError, match=r"no crop at all .* faces\.min_size .* faces\.enabled"):
        dd.dedupe([tmp_path / "0000.tsv", tmp_path / "0001.tsv"], tmp_path / "d.tsv", tmp_path / "d")
    _clean(tmp_path / "0001.tsv", [_row("1-0", "", "", 20, verdict="too_small"), _row("2-0", "", "", verdict="grayscale")])
    with pytest.raises(SetupError, match=r"none of the 2 face crops \(grayscale 1, too_small 1\).*"
                                         r"clean\.min_side / clean\.gray_chroma"):
        dd.dedupe([tmp_path / "0000.tsv", tmp_path / "0001.tsv"], tmp_path / "d.tsv", tmp_path / "d")
    assert not (tmp_path / "d.tsv").exists()
    _clean(tmp_path / "0002.tsv", [_row("3-0", "0123456789abcdef", "s")])
    summary = dd.dedupe([tmp_path / f"000{i}.tsv" for i in range(3)], tmp_path / "d.tsv", tmp_path / "d")
    assert summary["kept"] == 1 and (tmp_path / "d/0000.tsv").exists()


def test_planted_pair_keeps_the_lossless_original_over_its_upscaled_jpeg(tmp_path, tadne_grid):
    """A PNG original and its 2x-upscaled quality-70 JPEG copy, through faces (as ready-made
    crops), clean and dedupe: the original wins although the copy is four times larger."""
    from PIL import Image

    from ganflow import clean, faces
    from ganflow.ids import ID_COLUMNS

    art = Image.open(tadne_grid).convert("RGB").crop((128, 96, 384, 352))
    art.save(tmp_path / "original.png")
    art.resize((512, 512), Image.LANCZOS).save(tmp_path / "copy.jpg", quality=70)
    write_tsv(tmp_path / "ids.tsv", [{"id": 1, "path": tmp_path / "copy.jpg"},
                                     {"id": 2, "path": tmp_path / "original.png"}], ID_COLUMNS)
    faces.make_faces(tmp_path / "ids.tsv", tmp_path / "crops", tmp_path / "faces.tsv", faces.FaceParams(enabled=False))
    face_rows = {r["id"]: r for r in read_tsv(tmp_path / "faces.tsv")}
    assert (face_rows["1"]["format"], face_rows["1"]["lossless"], face_rows["1"]["quality"]) == ("jpeg", "0", "70")
    assert (face_rows["2"]["format"], face_rows["2"]["lossless"], face_rows["2"]["quality"]) == ("png", "1", "")
    clean.make_clean(tmp_path / "faces.tsv", tmp_path / "clean.tsv", clean.CleanParams())
    clean_rows = {r["id"]: r for r in read_tsv(tmp_path / "clean.tsv")}
    assert clean_rows["1"]["upscaled"] == "1" and clean_rows["2"]["upscaled"] == "0"
    dd.dedupe([tmp_path / "clean.tsv"], tmp_path / "dedupe.tsv", tmp_path / "dedupe")
    rows = {r["crop"]: r for r in read_tsv(tmp_path / "dedupe.tsv")}
    assert rows["2-0"]["keep"] == "1" and rows["2-0"]["why"] == "lossless over lossy"
    assert rows["1-0"]["keep"] == "0" and rows["1-0"]["cluster"] == "2-0"


def _flip(h: int, bits: list[int]) -> int:
    return h ^ sum(1 << b for b in bits)


def test_faces_of_copies_of_one_source_merge_by_place_hash_and_colour():
    """Sources with a whole or centre hash within 2 x threshold bits of the other's are copies
    of one illustration; a face of one and a face of the other are one face when each is the
    other's nearest (box centres relative to the image), their faces' hashes lie within 3 x
    threshold bits and their mean colours within COLOUR_LEVELS. Crops of one source, of
    sources only chained through a third one, of unrelated sources, of other places, other
    colours or farther hashes never merge so."""
    rng = random.Random(5)
    face = [rng.getrandbits(64) for _ in range(8)]
    ill, ill_centre, other, chain, twins = (rng.getrandbits(64) for _ in range(5))
    assert min(_popcount(a ^ b) for a, b in itertools.combinations(face + [ill, ill_centre, other, chain, twins], 2)) > 20
    sources = {  # whole-image hash, centre hash (random unless it matters)
        "A": (ill, ill_centre),
        "B": (_flip(ill, list(range(8))), rng.getrandbits(64)),  # A resized and re-encoded
        "R": (_flip(ill_centre, [3, 9]), rng.getrandbits(64)),  # A cut to its centre: whole ~ A's centre
        "K": (_flip(ill, list(range(40, 46))), rng.getrandbits(64)),
        "C": (other, rng.getrandbits(64)),
        "D": (_flip(other, list(range(20))), rng.getrandbits(64)),  # another picture
        "G": (chain, rng.getrandbits(64)),
        "H": (_flip(chain, list(range(8))), rng.getrandbits(64)),  # G ~ H ~ I, but G and I 16 bits apart
        "I": (_flip(chain, list(range(16))), rng.getrandbits(64)),
        "L": (twins, rng.getrandbits(64)),
        "M": (_flip(twins, [1]), rng.getrandbits(64)),
    }
    left, right, low, corner = (0.1, 0.1, 0.4, 0.4), (0.6, 0.2, 0.9, 0.5), (0.3, 0.6, 0.6, 0.9), (0.0, 0.7, 0.2, 0.9)
    grey, red = (120, 110, 100), (120 + dd.COLOUR_LEVELS + 1, 110, 100)
    crops = {  # crop: (crop and face hash, relative box, face colour)
        "A-0": (face[0], left, grey),
        "A-1": (face[1], right, grey),
        "A-2": (face[2], low, grey),
        "A-3": (_flip(face[0], list(range(40, 48))), corner, grey),  # 8 bits from A-0: the same source
        "B-0": (_flip(face[0], list(range(12))), (0.05, 0.08, 0.38, 0.41), grey),  # moved a little
        "B-1": (_flip(face[1], list(range(6))), (0.52, 0.12, 0.85, 0.45), grey),
        "B-2": (_flip(face[2], list(range(13))), (0.3, 0.55, 0.6, 0.85), grey),  # 13 bits: too far
        "R-0": (_flip(face[0], list(range(50, 60))), (0.06, 0.06, 0.39, 0.39), grey),
        "K-0": (_flip(face[0], list(range(20, 28))), left, red),  # another colour
        "C-0": (face[4], left, grey),
        "D-0": (_flip(face[4], list(range(8))), left, grey),
        "G-0": (face[5], left, grey),
        "H-0": (face[6], low, grey),
        "I-0": (_flip(face[5], list(range(40, 48))), left, grey),
        "L-0": (face[7], left, grey),  # two look-alike faces that swapped places in the copy:
        "L-1": (_flip(face[7], list(range(40, 50))), right, grey),  # close hashes, other places
        "M-0": (_flip(face[7], list(range(40, 50)) + list(range(20, 26))), left, grey),
        "M-1": (_flip(face[7], list(range(8))), right, grey),
    }
    names = list(crops)

    def run(threshold):
        rows = dd.find_clusters(names, names, [f"{crops[c][0]:016x}" for c in names],
                                [400 if c[0] in "AL" else 100 for c in names], threshold,
                                sources=[c[0] for c in names],
                                source_phash=[tuple(f"{h:016x}" for h in sources[c[0]]) for c in names],
                                boxes=np.array([crops[c][1] for c in names], dtype=np.float64),
                                face_phash=[f"{crops[c][0]:016x}" for c in names],
                                face_rgb=np.array([crops[c][2] for c in names], dtype=np.float64))
        return {r["crop"]: r for r in rows}

    rows = run(4)
    assert {c: r["cluster"] for c, r in rows.items() if r["cluster"] != c} == {"B-0": "A-0", "B-1": "A-1",
                                                                               "R-0": "A-0"}
    assert [(rows[c]["kind"], rows[c]["distance"]) for c in ("B-0", "B-1", "R-0")] == [
        ("source", 12), ("source", 6), ("source", 10)]
    assert all(r["keep"] == 1 for c, r in rows.items() if c not in ("B-0", "B-1", "R-0"))
    assert all(r["keep"] == 1 for r in run(0).values())  # threshold 0: no near matching of any kind
    without_sources = dd.find_clusters(names, names, [f"{crops[c][0]:016x}" for c in names], [1] * len(names), 4)
    assert all(r["keep"] == 1 for r in without_sources)


def test_copies_of_one_illustration_collapse_and_distinct_faces_never_merge(tmp_path, tadne_grid, cascade_path):
    """Real art through faces, clean and dedupe. One illustration (two faces) as a PNG, a 0.5x
    copy, a quality-60 re-encode and a 90% centre recrop: one crop per face survives, the
    original's. The 36 tiles of the grid, 36 different faces, never merge."""
    from PIL import Image

    from ganflow import clean, faces
    from ganflow.ids import ID_COLUMNS

    grid = Image.open(tadne_grid).convert("RGB")
    tiles = [grid.crop((k % 6 * 512, k // 6 * 512, k % 6 * 512 + 512, k // 6 * 512 + 512)) for k in range(36)]
    ill = Image.new("RGB", (1400, 900), (235, 225, 215))
    ill.paste(tiles[3], (100, 200))
    ill.paste(tiles[10], (760, 150))
    ill.save(tmp_path / "ill.png")
    ill.resize((700, 450), Image.LANCZOS).save(tmp_path / "half.jpg", quality=90)
    ill.save(tmp_path / "q60.jpg", quality=60)
    ill.crop((70, 45, 1330, 855)).save(tmp_path / "recrop.jpg", quality=90)
    for k, tile in enumerate(tiles):
        tile.save(tmp_path / f"tile{k}.jpg", quality=95)
    shards = {"0000": [f"tile{k}.jpg" for k in range(36)], "0001": ["ill.png", "half.jpg", "q60.jpg", "recrop.jpg"]}
    for shard, files in shards.items():
        write_tsv(tmp_path / f"ids/{shard}.tsv", [{"id": f.split(".")[0], "path": str(tmp_path / f)} for f in files],
                  ID_COLUMNS)
        faces.make_faces(tmp_path / f"ids/{shard}.tsv", tmp_path / f"faces/{shard}", tmp_path / f"faces/{shard}.tsv",
                         faces.FaceParams(), cascade_path=cascade_path)
        clean.make_clean(tmp_path / f"faces/{shard}.tsv", tmp_path / f"clean/{shard}.tsv", clean.CleanParams())

    alone = dd.dedupe([tmp_path / "clean/0000.tsv"], tmp_path / "tiles.tsv", tmp_path / "tiles", threshold=4)
    assert alone["crops"] >= 30 and alone["kept"] == alone["crops"]

    summary = dd.dedupe([tmp_path / "clean/0000.tsv", tmp_path / "clean/0001.tsv"], tmp_path / "dedupe.tsv",
                        tmp_path / "dedupe", threshold=4)
    rows = {r["crop"]: r for r in read_tsv(tmp_path / "dedupe.tsv")}
    kept = {r["crop"]: r for r in read_tsv(tmp_path / "clean/0001.tsv") if r["verdict"] == "kept"}

    def side(crop: str) -> str:  # which of the two faces: left or right half of its source
        x, _, w, _ = map(int, kept[crop]["box"].split(","))
        return "left" if x + w / 2 < int(kept[crop]["source_size"].split("x")[0]) / 2 else "right"

    assert len(kept) == 8  # both faces found in all four copies
    assert {c for c in kept if rows[c]["keep"] == "1"} == {"ill-0", "ill-1"}
    for crop in kept:
        assert side(rows[crop]["cluster"]) == side(crop) and rows[crop]["cluster"].startswith("ill-")
    assert rows["ill-0"]["why"] == rows["ill-1"]["why"] == "lossless over lossy"
    assert summary["removed_source"] >= 1  # crop hashes alone would have kept a copy:
    plain = dd.find_clusters(list(kept), [r["sha256"] for r in kept.values()], [r["phash"] for r in kept.values()],
                             [1] * len(kept), 4)
    assert sum(r["keep"] for r in plain) > 2
    # no tile merges with another tile (3 and 10 are in the illustration: those may join it)
    for r in read_tsv(tmp_path / "clean/0000.tsv"):
        if r["verdict"] == "kept" and r["id"] not in ("tile3", "tile10"):
            assert rows[r["crop"]]["keep"] == "1" and not [o for o in rows.values() if o["cluster"] == r["crop"]
                                                           and o["crop"] != r["crop"]], r["crop"]


def test_the_log_says_what_dedupe_dropped_and_why_the_kept_copies_won(tmp_path, caplog):
    h = 0x5555_AAAA_5555_AAAA
    rows = [_row("10-0", f"{h:016x}", "p", 200), _row("11-0", f"{h ^ 0b11:016x}", "q", 100),
            _row("12-0", f"{h ^ 0b11:016x}", "p", 150), _row("21-0", f"{~h & (2**64 - 1):016x}", "r")]
    for r in rows:
        r.update(source_phash=f"{h:016x}", source_size="400x400", box="0,0,100,100")
    rows[3].update(source_phash="")
    _clean(tmp_path / "0000.tsv", rows)
    with caplog.at_level(logging.INFO, logger="ganflow.dedupe"):
        summary = dd.dedupe([tmp_path / "0000.tsv"], tmp_path / "d.tsv", tmp_path / "d", threshold=4)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dedupe:")]
    assert line.startswith("dedupe: 4 kept crops of 4 sources in 1 shards: 2 kept, dropped 1 exact, 1 near and "
                           "0 source duplicates")
    assert "1 clusters with duplicates, the largest 3; the kept copy won by: larger 1; 1 sources without a " \
           "source hash" in line
    assert summary["removed_source"] == 0 and summary["sources_unhashed"] == 1
