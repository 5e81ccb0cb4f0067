"""figures: grid sizes from the resolution and counts (16/32/64px), layer ranges derived
from the model, the psi=0 column of the truncation figure, mixing and noise panels, and
labels that stay legible however small the model (cells enlarged, text in the margins)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganflow import annotate, figures, latents, networks
from ganflow.runlog import SetupError
from test_samples import tiny_generator

SRC, DST, SEEDS, PSIS = [10, 4], [10, 11, 12], [0, 1, 2], [1.0, 0.5, 0.0, -1.0]
LODS = (0, 1, 2)


@pytest.fixture(scope="module", params=[16, 32, 64])
def G(request) -> networks.Generator:
    return tiny_generator(request.param)


def _kept_lods(res: int) -> list[int]:
    return [lod for lod in LODS if lod == 0 or res >> lod >= figures.MIN_TILE]


def _grid_size(name: str, r: int) -> tuple[int, int]:
    """(height, width) of a figure's grid of generated cells, before enlarging and labels."""
    return {
        "uncurated": (2 * r, sum(r >> lod for lod in _kept_lods(r))),
        "style_mixing": ((1 + 3 * len(SRC)) * r, (1 + len(DST)) * r),
        "noise_detail": (2 * r, 3 * r),
        "noise_components": (len(SEEDS) * r, 4 * r),
        "truncation": (len(SEEDS) * r, len(PSIS) * r),
    }[name]


def _split(canvas: np.ndarray, name: str, r: int) -> tuple[np.ndarray, int, int, int]:
    """(grid, scale, top margin, left margin): the labels sit above and left of the grid,
    which is enlarged by a whole factor, so every scale-th pixel is the generated one."""
    scale = annotate.layout(r, r, columns=False, rows=False).scale
    gh, gw = _grid_size(name, r)
    top, left = canvas.shape[0] - gh * scale, canvas.shape[1] - gw * scale
    return canvas[top::scale, left::scale], scale, top, left


@pytest.fixture(scope="module")
def labelled(G, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp(f"figures{G.resolution}")
    paths = figures.make_figures(G, out, psi=0.7, settings={
        "uncurated": {"seed": 3, "rows": 2, "lods": LODS},
        "style_mixing": {"src_seeds": SRC, "dst_seeds": DST},
        "noise_detail": {"seeds": SEEDS[:2], "draws": 6},
        "noise_components": {"seeds": SEEDS},
        "truncation": {"seeds": SEEDS, "psis": PSIS},
    })
    return {name: np.asarray(Image.open(path)) for name, path in paths.items()}


@pytest.fixture(scope="module")
def made(G, labelled) -> dict:
    """The generated grids inside the labelled figures."""
    return {name: _split(canvas, name, G.resolution)[0] for name, canvas in labelled.items()}


def _cell(canvas: np.ndarray, row: int, col: int, res: int) -> np.ndarray:
    return canvas[row * res:(row + 1) * res, col * res:(col + 1) * res]


def test_grid_sizes(G, made):
    assert {k: v.shape for k, v in made.items()} == {k: (*_grid_size(k, G.resolution), 3) for k in made}


def test_cells_are_enlarged_and_labelled_in_the_margins(G, labelled):
    r = G.resolution
    labels = {"uncurated": (0, 0), "style_mixing": (1 + len(DST), 1 + 3 * len(SRC)),
              "noise_detail": (3, 2), "noise_components": (4, len(SEEDS)), "truncation": (len(PSIS), len(SEEDS))}
    for name, canvas in labelled.items():
        _, scale, top, left = _split(canvas, name, r)
        assert r * scale >= annotate.MIN_CELL  # a 16px model's cells are shown at 80px or more
        cols, rows = labels[name]
        assert (top > 0) == (cols > 0) and (left > 0) == (rows > 0), name
        cell = r * scale
        for c in range(cols):  # ink above every column, inside its own width
            head = canvas[:top, left + c * cell:left + (c + 1) * cell]
            assert (head < 128).any(), (name, "column", c)
        for k in range(rows):  # and left of every row
            side = canvas[top + k * cell:top + (k + 1) * cell, :left]
            assert (side < 128).any(), (name, "row", k)
    # the labels are sized from the enlarged cells, so they are the same at every resolution
    assert annotate.layout(r, r, columns=True, rows=False).font_size >= 13


def test_truncation_psi_zero_column_is_the_same_image(G, made):
    r, canvas = G.resolution, made["truncation"]
    zero, one = PSIS.index(0.0), PSIS.index(1.0)
    assert all(np.array_equal(_cell(canvas, 0, zero, r), _cell(canvas, s, zero, r)) for s in range(len(SEEDS)))
    assert not np.array_equal(_cell(canvas, 0, one, r), _cell(canvas, 1, one, r))
    assert not np.array_equal(_cell(canvas, 0, zero, r), _cell(canvas, 0, one, r))
    # psi 1 is the seed's untruncated sample
    ws = latents.map_latents(G, latents.seed_z([SEEDS[1]], G.z_dim), 1.0)
    assert np.array_equal(_cell(canvas, 1, one, r), latents.render(G, ws)[0])


def test_style_mixing_layout(G, made):
    r, canvas = G.resolution, made["style_mixing"]
    assert (_cell(canvas, 0, 0, r) == 255).all()
    for band in range(3):
        for i, src in enumerate(SRC):
            row = 1 + band * len(SRC) + i
            assert np.array_equal(_cell(canvas, row, 0, r), _cell(canvas, 1 + i, 0, r))  # source repeated
            for j, dst in enumerate(DST):
                cell, top = _cell(canvas, row, 1 + j, r), _cell(canvas, 0, 1 + j, r)
                # a source's styles change a destination unless it is the same seed
                assert np.array_equal(cell, top) == (src == dst), (band, src, dst)


def test_noise_components_panels(G, made):
    r, canvas = G.resolution, made["noise_components"]
    ws = latents.map_latents(G, latents.seed_z(SEEDS, G.z_dim), 0.7)
    quiet = latents.render(G, ws, noise_mode="none")
    noisy = latents.render(G, ws, noise_mode="random", noise=latents.random_noise(G, SEEDS))
    for s in range(len(SEEDS)):
        panels = [_cell(canvas, s, k, r) for k in range(4)]
        assert np.array_equal(panels[0], noisy[s]) and np.array_equal(panels[1], quiet[s])
        assert len({p.tobytes() for p in panels}) == 4, "all/none/fine/coarse noise must differ"


def test_noise_detail_rows(G, made):
    r, canvas = G.resolution, made["noise_detail"]
    ws = latents.map_latents(G, latents.seed_z(SEEDS[:1], G.z_dim), 0.7)
    first = latents.render(G, ws, noise=latents.random_noise(G, SEEDS[:1]))[0]
    assert np.array_equal(_cell(canvas, 0, 0, r), first)  # draw 0 = the seed's 'random' sample
    crops = _cell(canvas, 0, 1, r)
    c, lo = r // 4, (r - r // 4) // 2
    assert np.array_equal(crops[:r // 2, :r // 2], first[lo:lo + c, lo:lo + c].repeat(2, 0).repeat(2, 1))
    std = _cell(canvas, 0, 2, r)
    assert std.max() > 0 and (std[..., 0] == std[..., 1]).all()


def test_uncurated_columns(G, made):
    r, canvas = G.resolution, made["uncurated"]
    ws = latents.map_latents(G, latents.seed_z([3, 4], G.z_dim), 0.7)
    images = latents.render(G, ws)
    assert np.array_equal(canvas[:r, :r], images[0]) and np.array_equal(canvas[r:, :r], images[1])
    assert min(r >> lod for lod in _kept_lods(r)) >= min(r, figures.MIN_TILE)  # no colour blobs


@pytest.mark.parametrize("resolution", [64, 128, 256, 1024])
def test_noise_split_follows_the_paper_from_64px(resolution):
    """Fine noise = the 64px-and-up layers; conv i's resolution is that of w index i."""
    layers = figures.noise_layers(resolution)
    res = networks.ws_resolutions(resolution)[:len(layers["all"])]
    assert layers["fine"] == [x >= 64 for x in res] and layers["coarse"] == [x < 64 for x in res]
    assert len(layers["all"]) == networks.num_ws_for(resolution) - 1


def test_noise_split_of_small_models(G):
    layers = figures.noise_layers(G.resolution)
    assert len(layers["all"]) == len(G.synthesis.noise_shapes)
    assert any(layers["fine"]) and any(layers["coarse"]) and not any(layers["none"])


def test_bad_settings_fail_with_one_sentence(tmp_path):
    G = tiny_generator(16)
    with pytest.raises(SetupError, match="lods"):
        figures.uncurated(G, tmp_path / "u.png", lods=(0, 5))
    with pytest.raises(SetupError, match="not known"):
        figures.make_figures(G, tmp_path, settings={"uncurrated": {}})


def test_a_long_column_label_shrinks_to_its_column():
    """The projection sheet's "reconstruction" over a 32 px model's cell was cut at the edge."""
    cells = np.full((32, 64, 3), 128, np.uint8)  # two 32 px cells side by side
    out = annotate.labelled_grid(cells, 32, 32, col_labels=["target", "reconstruction"])
    lay = annotate.layout(32, 32, columns=True, rows=False)
    band = out[:lay.top]
    ink = np.argwhere((band < 128).all(axis=2))  # the label pixels
    cw = 32 * lay.scale
    right = ink[ink[:, 1] >= cw]  # the second column's label
    assert len(right) and right[:, 1].min() > cw and right[:, 1].max() < 2 * cw - 1  # whole, inside its column
    assert annotate.fitting("reconstruction", lay.font_size, cw).size < lay.font_size
    assert annotate.fitting("target", lay.font_size, cw).size == lay.font_size  # short labels keep their size
