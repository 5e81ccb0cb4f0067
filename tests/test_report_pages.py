"""Report report and pages: curves drawn where their values are, histograms split into kept
and dropped images, empty or cut-short logs, the funnel table and self-contained video pages."""

from __future__ import annotations

import base64
import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from ganflow import report
from ganflow.tables import write_tsv

LOG_HEADER = ("kimg,tick,step,seconds,sec_per_tick,sec_per_kimg,images_per_sec,loss_g,loss_d,r1,d_real,d_fake,"
              "augment_p,swd,frame")


def _log(path, rows: list[str]) -> str:
    path.write_text("\n".join([LOG_HEADER, *rows]) + "\n")
    return str(path)


def _tick(kimg: float, loss_g: str, loss_d: str, swd: str) -> str:
    return f"{kimg},1,1,1,1,1,1,{loss_g},{loss_d},0.05,0.5,-0.5,0.01,{swd},f.png"


def _pixels_of(image: np.ndarray, color) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the pixels in exactly `color`, below the header row (title and legend)."""
    ys, xs = np.nonzero(np.all(image == np.array(color, np.uint8), axis=-1))
    keep = ys % report.PANEL_SIZE[1] > 28
    return ys[keep], xs[keep]


@pytest.mark.parametrize("lo,hi", [(0, 36), (-1.3, 2.7), (0.0012, 0.0078), (57.0, 160.0), (0.95, 1.05)])
def test_nice_ticks_are_round_even_steps_inside_the_range(lo, hi):
    ticks = report.nice_ticks(lo, hi)
    assert 2 <= len(ticks) <= 11 and lo <= ticks[0] and ticks[-1] <= hi
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert min(abs(mantissa - m) for m in (1, 2, 2.5, 5, 10)) < 1e-6


def test_curves_are_drawn_where_their_values_are(tmp_path):
    # G falls 2 -> 1 and D rises 0.5 -> 1.5 over 5 kimg; tick 0 logs no losses, SWD every
    # other tick, and the last line was cut short by a kill
    rows = [_tick(0, "", "", "100")]
    rows += [_tick(k, f"{2 - 0.2 * k}", f"{0.5 + 0.2 * k}", "" if k % 2 else f"{100 - 10 * k}") for k in range(1, 6)]
    rows.append("6.0,7")
    out_losses, out_swd = tmp_path / "losses.png", tmp_path / "swd.png"
    assert report.training_curves(_log(tmp_path / "log.csv", rows), out_losses, out_swd, title="Round 1") == 7
    losses = np.asarray(Image.open(out_losses).convert("RGB"))
    assert losses.shape == (len(report.LOSS_PANELS) * report.PANEL_SIZE[1], report.PANEL_SIZE[0], 3)
    first = losses[: report.PANEL_SIZE[1]]
    g_ys, g_xs = _pixels_of(first, report.COLORS[0])
    d_ys, d_xs = _pixels_of(first, report.COLORS[1])
    assert g_xs.size and d_xs.size
    # falling G: high (small y) at the left; rising D: the reverse
    assert g_ys[g_xs == g_xs.min()].mean() < g_ys[g_xs == g_xs.max()].mean()
    assert d_ys[d_xs == d_xs.min()].mean() > d_ys[d_xs == d_xs.max()].mean()
    # panels share the x axis (kimg 0..6) although losses start at 1: G begins 1/6 in
    left, right = report._MARGIN["left"], report.PANEL_SIZE[0] - report._MARGIN["right"]
    assert g_xs.min() == pytest.approx(left + (right - left) / 6, abs=4)
    swd = np.asarray(Image.open(out_swd).convert("RGB"))
    s_ys, s_xs = _pixels_of(swd, report.COLORS[0])
    assert s_xs.min() == pytest.approx(left, abs=4) and s_ys[s_xs == s_xs.min()].mean() < s_ys.mean()


def test_a_log_without_values_says_so_instead_of_drawing(tmp_path):
    out_swd = tmp_path / "swd.png"
    report.training_curves(_log(tmp_path / "log.csv", [_tick(0, "", "", "")]), tmp_path / "l.png", out_swd)
    swd = np.asarray(Image.open(out_swd).convert("RGB"))
    assert _pixels_of(swd, report.COLORS[0])[0].size == 0
    assert report.training_curves(_log(tmp_path / "empty.csv", []), tmp_path / "l2.png", tmp_path / "s2.png") == 0


def test_score_histogram_splits_kept_from_dropped(tmp_path):
    # 3 images score 0, 15 between 4 and 5, 2 score 10; the next round drops both ends
    scores = [0.0] * 3 + [4 + k / 15 for k in range(15)] + [10.0] * 2
    rank = [{"image": f"i{k:02d}", "path": "", "score": s, "rank": k + 1} for k, s in enumerate(scores)]
    rank.append({"image": "bad", "path": "", "score": "", "rank": "", "reason": "undecodable"})
    write_tsv(tmp_path / "rank.tsv", rank, ["image", "path", "score", "rank", "reason", "detail"])
    write_tsv(tmp_path / "keep.tsv", ({"image": f"i{k:02d}"} for k in range(3, 18)), ["image"])
    out = tmp_path / "scores.png"
    counts = report.score_histogram(tmp_path / "rank.tsv", out, keep_tsv=tmp_path / "keep.tsv", title="Round 1")
    assert counts == {"kept": 15, "dropped": 5, "unscored": 1}
    image = np.asarray(Image.open(out).convert("RGB"))
    _, kept_xs = _pixels_of(image, report.KEPT)
    _, dropped_xs = _pixels_of(image, report.DROPPED)
    # orange bars at both ends only, blue ones in the middle only
    assert dropped_xs.min() < kept_xs.min() and dropped_xs.max() > kept_xs.max()
    assert not ((dropped_xs > kept_xs.min()) & (dropped_xs < kept_xs.max())).any()
    # without a keep list every scored image counts as kept
    assert report.score_histogram(tmp_path / "rank.tsv", tmp_path / "all.png")["dropped"] == 0


class _Rows(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.widths: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self.rows[-1].append("")
        elif tag == "div" and "style" in dict(attrs):
            self.widths.append(dict(attrs)["style"])

    def handle_data(self, data):
        if self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def test_funnel_page_lists_stages_and_reasons_escaped(tmp_path):
    rows = [{"stage": "posts", "count": 200}, {"stage": "selected", "count": 150},
            {"stage": "selected", "dropped_reason": "rating_e", "dropped": 30},
            {"stage": "selected", "dropped_reason": "<b>odd</b>", "dropped": 20}, {"stage": "final", "count": 50}]
    write_tsv(tmp_path / "funnel.tsv", rows, ["stage", "count", "dropped_reason", "dropped"])
    assert report.funnel_page(tmp_path / "funnel.tsv", tmp_path / "funnel.html") == 3
    text = (tmp_path / "funnel.html").read_text()
    assert "<b>odd</b>" not in text and "&lt;b&gt;odd&lt;/b&gt;" in text
    parsed = _Rows()
    parsed.feed(text)
    cells = [[c.strip() for c in row if c.strip()] for row in parsed.rows[1:]]
    assert cells == [["posts", "200"], ["selected", "150"], ["rating_e", "30"], ["<b>odd</b>", "20"], ["final", "50"]]
    assert [float(re.search(r"width:([\d.]+)%", w).group(1)) for w in parsed.widths] == [100, 75, 15, 10, 25]


def test_video_page_carries_the_exact_video(tmp_path):
    data = bytes(range(256)) * 40
    (tmp_path / "walk.mp4").write_bytes(data)
    assert report.video_page(tmp_path / "walk.mp4", tmp_path / "walk.html", title="A & B") == len(data)
    text = (tmp_path / "walk.html").read_text()
    uri = re.search(r'<video[^>]* src="data:video/mp4;base64,([^"]+)"', text).group(1)
    assert base64.b64decode(uri) == data
    assert "<title>A &amp; B</title>" in text and "autoplay" in text and "muted" in text


def test_overview_embeds_everything_and_enlarges_small_images(tmp_path):
    write_tsv(tmp_path / "funnel.tsv", [{"stage": "posts", "count": "10", "dropped_reason": "", "dropped": ""},
                                        {"stage": "final", "count": "4", "dropped_reason": "", "dropped": ""}],
              ["stage", "count", "dropped_reason", "dropped"])
    Image.new("RGB", (48, 32), (200, 10, 10)).save(tmp_path / "grid.png")
    Image.new("RGB", (700, 90), (10, 10, 200)).save(tmp_path / "curve.png")
    (tmp_path / "small.mp4").write_bytes(b"\0" * 100)
    (tmp_path / "big.mp4").write_bytes(b"\0" * 3000)
    out = tmp_path / "site" / "overview.html"
    out.parent.mkdir()
    n = report.overview_page(out, title="ganflow: demo", funnel_tsv=tmp_path / "funnel.tsv", embed_limit=1000,
                             sections=[("Samples", [tmp_path / "grid.png"]), ("Empty", []),
                                       ("Training curves", [tmp_path / "curve.png"]),
                                       ("Videos", [tmp_path / "small.mp4", tmp_path / "big.mp4"])])
    page = out.read_text()
    assert n == 4 and page.count("<h4>") == 4 and "Empty" not in page  # funnel + three non-empty sections
    assert 'width="480"' in page and 'width="700"' in page  # 48 px shown 10x; wide images as they are
    assert page.count("data:image/png;base64,") == 2 and page.count("data:video/mp4;base64,") == 1
    assert 'src="../big.mp4"' in page  # over the limit: linked beside the page, not embedded
    assert page.count('<tr class="stage">') == 2


def test_rounds_table_shows_each_rounds_last_swd_and_its_metrics(tmp_path):
    """The last logged SWD (not the last row's, which may have none) and each metric in
    metrics.json; a round without metrics.json keeps empty cells, and with none at all the
    page says why they are missing."""
    logs = [_log(tmp_path / "1.csv", [_tick(1.0, "1", "1", "80.5"), _tick(2.0, "1", "1", "71.25"),
                                      _tick(2.5, "1", "1", "")]),
            _log(tmp_path / "2.csv", [_tick(0.5, "1", "1", "60")])]
    (tmp_path / "m1.json").write_text(json.dumps({"fid": 12.345, "kid": 0.00789, "precision": 0.5}))
    table = report.rounds_table([(logs[0], tmp_path / "m1.json"), (logs[1], None)])
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in table.split("\n") if row.startswith("<tr><td")]
    assert rows == [["1", "2.5", "71.2", "12.35", "7.89", "0.500", ""], ["2", "0.5", "60.0", "", "", "", ""]]
    assert "not computed" not in table
    assert "metrics.inception and metrics.vgg16 name no file" in report.rounds_table([(logs[1], None)])
