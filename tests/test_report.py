"""`snakemake --report` on the tiny chain of conftest's `run`, opened in a real headless
Chromium: every result (funnel, contact sheets, curves, histograms, keep sheets, samples,
figures, video pages) is listed in its category with its caption, each image shows with
its own pixels, the videos play, and nothing logs a console error. Screenshots of every
view (caption beside the result) go to the test's tmp dir and to results/report-test/."""

from __future__ import annotations

import io
import math
import shutil
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from chromium import Browser
from ganflow.tables import read_tsv
from workflow import REPO, snakemake

pytestmark = pytest.mark.slow  # a headless Chromium on the whole tiny chain

CONTACT = ["duplicates", "faces", "images", "no-face", "over-max-faces", "rejected"]
FIGURES = ["noise_components", "noise_detail", "style_mixing", "truncation", "uncurated"]
VIDEOS = ["interpolation-grid", "style-mixing-coarse", "style-mixing-fine", "training-progress"]
EXPECTED = {  # category -> subcategory -> files under results/demo ("Other": no subcategory)
    "0. Overview": {"Other": ["overview.html"]},
    "1. Data": {"Funnel": ["report/funnel.html"],
                "Contact sheets": [f"report/contact-{s}.png" for s in CONTACT]},
    "2. Training": {f"Round {r}": [f"report/round-{r}/losses.png", f"report/round-{r}/swd.png"] for r in (1, 2)},
    "3. Ranking": {"Round 1": ["report/round-1/scores.png", "round-2/keep-sheets/highest.png",
                               "round-2/keep-sheets/lowest.png"]},
    "4. Samples": {"Other": ["samples/grid.png"]},
    "5. Figures": {"Other": [f"figures/{f}.png" for f in FIGURES]},
    "6. Videos": {"Other": [f"report/videos/{v}.html" for v in VIDEOS]},
    "7. Projection": {"Other": ["project/dataset-0/sheet.png"]},
    "8. Edits": {"Other": ["edits/tags.png", "edits/tags/smile.png"]},
}
SHOTS_KEPT = REPO / "results" / "report-test"

# Clicks through the report as a person would: home, category, subcategory, the result's
# eye button (shows it), its info button (shows the caption in the side bar).
DRIVER = """
window.ui = {
  tick: () => new Promise(r => setTimeout(r, 60)),
  link(text) { return [...document.querySelectorAll('#app nav a')].find(a => a.textContent.trim() === text); },
  click(text) { const a = this.link(text); if (!a) throw new Error('no link ' + text); a.click(); },
  async show(category, subcategory, path) {
    document.querySelector('#app nav ol li a').click(); await this.tick();
    this.click(category); await this.tick();
    if (Object.keys(categories[category]).length > 1) { this.click(subcategory); await this.tick(); }
    const row = [...document.querySelectorAll('#app tr')].find(r => r.firstChild.textContent.trim() === path);
    if (!row) throw new Error('no row ' + path);
    row.querySelector('a[iconname=eye]').click(); await this.tick();
    row.querySelector('a[iconname=information-circle]').click(); await this.tick();
    const caption = document.createElement('div');
    caption.innerHTML = results[path].caption;
    return {side: document.querySelector('#app nav').innerText, caption: caption.textContent};
  },
  async settled(element) {  // the side bar animates its width: wait until the element stops moving
    let last = '';
    for (let i = 0; i < 50; i++) {
      const r = element.getBoundingClientRect(), now = JSON.stringify([r.x, r.y, r.width, r.height]);
      if (now === last) return {x: r.x, y: r.y, width: r.width, height: r.height};
      last = now;
      await new Promise(r => setTimeout(r, 120));
    }
    throw new Error('still moving');
  },
  async image(uri) {
    for (let i = 0; i < 100; i++) {
      const img = [...document.querySelectorAll('#app img')].find(im => im.src === uri);
      if (img && img.complete && img.naturalWidth > 0) {
        return {...await this.settled(img), natural: [img.naturalWidth, img.naturalHeight]};
      }
      await this.tick();
    }
    return null;
  },
  frameRect() { return this.settled(document.querySelector('#app iframe')); },
};
"""

# Runs inside a video page: waits for a decoded frame, then stops on the first one.
VIDEO_PROBE = """
(async () => {
  const v = document.querySelector('video');
  const until = (ok) => new Promise(r => { const t0 = Date.now(); (function poll() {
    if (ok() || Date.now() - t0 > 15000) r(); else setTimeout(poll, 50); })(); });
  await until(() => v.error || v.readyState >= 2);
  const played = v.error ? false : await Promise.race([
    new Promise(r => v.requestVideoFrameCallback(() => r(true))), new Promise(r => setTimeout(() => r(false), 5000))]);
  v.pause();
  v.controls = false;  // the paused player's controls would cover the frame
  const seeked = new Promise(r => { v.onseeked = r; setTimeout(r, 3000); });
  v.currentTime = 0;
  await seeked;
  await new Promise(r => setTimeout(r, 300));  // let the sought frame reach the screen
  const rect = v.getBoundingClientRect();
  return {error: v.error && v.error.code, ready: v.readyState, size: [v.videoWidth, v.videoHeight], played,
          rect: {x: rect.x, y: rect.y, width: rect.width, height: rect.height}};
})()
"""


@pytest.fixture(scope="module")
def report(run):
    wd, res = run
    out = wd / "report.html"
    snakemake(wd, "--report", str(out))
    return out, res


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    path = tmp_path_factory.mktemp("report-shots")
    yield path
    shutil.rmtree(SHOTS_KEPT, ignore_errors=True)
    shutil.copytree(path, SHOTS_KEPT)
    print(f"\nreport screenshots: {path} (copied to {SHOTS_KEPT})")


@pytest.fixture(scope="module")
def page(report, browser):
    html, _ = report
    browser.open(html.as_uri())
    browser.evaluate(DRIVER)
    return browser


def _results():
    for category, subs in EXPECTED.items():
        for sub, files in subs.items():
            for name in files:
                yield category, sub, f"results/demo/{name}"


def _shot(browser: Browser, path) -> np.ndarray:
    """Save a screenshot of the window, which must show something (not one flat colour)."""
    screen = np.asarray(Image.open(browser.screenshot(path)).convert("RGB"))
    colours = np.unique(screen.reshape(-1, 3).astype(np.int32) @ np.array([65536, 256, 1]))
    assert screen.std() > 20 and len(colours) > 50, f"{path} looks blank"
    return screen.astype(float)


def _first_frame(mp4) -> Image.Image:
    """The video's first frame as ffmpeg decodes it."""
    png = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(mp4), "-frames:v", "1",
                          "-f", "image2pipe", "-vcodec", "png", "-"], capture_output=True, check=True).stdout
    return Image.open(io.BytesIO(png)).convert("RGB")


def _difference(screen: np.ndarray, rect: dict, expected: np.ndarray) -> float:
    """Mean absolute difference between `expected` (HxWx3) and the screen at `rect`; the
    element may sit at a fractional position, so the best of the nearby whole-pixel crops."""
    h, w = expected.shape[:2]
    best = np.inf
    for y in {math.floor(rect["y"]), math.ceil(rect["y"])}:
        for x in {math.floor(rect["x"]), math.ceil(rect["x"])}:
            crop = screen[y:y + h, x:x + w]
            if crop.shape == expected.shape:
                best = min(best, float(np.abs(crop - expected).mean()))
    return best


def test_console_errors_are_caught(tmp_path):
    """The check below is only worth something if errors of the page and its frames reach it."""
    frame = "data:text/html,<script>console.error('in a frame')</script>"
    (tmp_path / "bad.html").write_text(f"""<!doctype html><title>bad</title><script>console.error("logged");
        setTimeout(() => {{ throw new Error("thrown later"); }}, 10);</script><iframe src="{frame}"></iframe>""")
    expected = ("logged", "thrown later", "in a frame")

    def all_seen() -> bool:
        return all(any(text in e for e in b.errors) for text in expected)

    b = Browser(tmp_path / "profile")
    try:
        b.open((tmp_path / "bad.html").as_uri())
        b.pump(30, until=all_seen)  # on a loaded machine the frame's error can take seconds
    finally:
        b.close()
    for text in expected:
        assert any(text in e for e in b.errors), text


def test_every_result_listed_with_its_caption(page):
    got = {c: {s: sorted(files) for s, files in subs.items()} for c, subs in page.evaluate("categories").items()}
    assert got == {c: {s: sorted(f"results/demo/{n}" for n in files) for s, files in subs.items()}
                   for c, subs in EXPECTED.items()}
    captions = page.evaluate("Object.fromEntries(Object.entries(results).map(([p, r]) => [p, r.caption]))")
    for path, caption in captions.items():
        assert len(caption) > 60 and "{{" not in caption and "{%" not in caption, (path, caption)
    # captions are templates: they name their own round, video and the configured shares
    assert "round 2" in captions["results/demo/report/round-2/losses.png"].lower()
    assert "25.0 %" in captions["results/demo/report/round-1/scores.png"]
    assert "10.0 %" in captions["results/demo/report/round-1/scores.png"]
    assert "style-mixing-fine.mp4" in captions["results/demo/report/videos/style-mixing-fine.html"]
    assert "Truncation" in captions["results/demo/figures/truncation.png"]
    assert page.errors == []


def test_images_show_with_their_own_pixels(page, report, shots):
    _, res = report
    uris = page.evaluate("Object.fromEntries(Object.entries(results).map(([p, r]) => [p, r.data_uri]))")
    for category, sub, path in _results():
        if not path.endswith(".png"):
            continue
        shown = page.evaluate(f"ui.show({category!r}, {sub!r}, {path!r})")
        assert " ".join(shown["caption"].split()) in " ".join(shown["side"].split())  # caption on screen
        rect = page.evaluate(f"ui.image({uris[path]!r})")
        assert rect is not None, f"{path} did not render"
        file = np.asarray(Image.open(res.parent.parent / path).convert("RGB"), dtype=float)
        assert rect["natural"] == [file.shape[1], file.shape[0]]
        assert (rect["width"], rect["height"]) == (file.shape[1], file.shape[0]), f"{path} shown scaled"
        screen = _shot(page, shots / f"{category[:1]}-{path.split('/', 2)[2].replace('/', '_')}")
        assert _difference(screen, rect, file) < 2.0, f"{path} is not on screen as in the file"
    page.pump(0.3)
    assert page.errors == []


def test_pages_show_the_funnel_and_play_the_videos(page, report, shots):
    _, res = report
    page.evaluate("ui.show('1. Data', 'Funnel', 'results/demo/report/funnel.html')")
    table = page.frame_evaluate(
        "[...document.querySelectorAll('tr.stage td:first-child')].map(td => td.textContent)")
    stages = [r["stage"] for r in read_tsv(res / "report/funnel.tsv") if not r["dropped_reason"]]
    assert table == stages and "final" in stages
    _shot(page, shots / "1-funnel.png")
    for video in VIDEOS:
        page.evaluate(f"ui.show('6. Videos', 'Other', 'results/demo/report/videos/{video}.html')")
        probe = page.frame_evaluate(VIDEO_PROBE)
        frame = _first_frame(res / f"videos/{video}.mp4")
        assert probe["error"] is None and probe["ready"] >= 2 and probe["played"], (video, probe)
        assert probe["size"] == [frame.width, frame.height], video
        origin = page.evaluate("ui.frameRect()")
        rect = {**probe["rect"], "x": probe["rect"]["x"] + origin["x"], "y": probe["rect"]["y"] + origin["y"]}
        size = (round(rect["width"]), round(rect["height"]))
        expected = np.asarray(frame.resize(size, Image.NEAREST), float)
        difference = _difference(_shot(page, shots / f"6-{video}.png"), rect, expected)
        assert difference < 6.0, (video, difference)  # browsers convert YUV to RGB a little differently
    page.pump(0.3)
    assert page.errors == []


OVERVIEW_PROBE = """
(async () => {
  const until = (ok) => new Promise(r => { const t0 = Date.now(); (function poll() {
    if (ok() || Date.now() - t0 > 20000) r(); else setTimeout(poll, 50); })(); });
  const imgs = [...document.querySelectorAll('img')], videos = [...document.querySelectorAll('video')];
  await until(() => imgs.every(i => i.complete) && videos.every(v => v.error || v.readyState >= 2));
  return {images: imgs.map(i => ({ok: i.complete && i.naturalWidth > 0, natural: i.naturalWidth,
                                  shown: i.getBoundingClientRect().width})),
          videos: videos.map(v => ({error: v.error && v.error.code, ready: v.readyState})),
          headings: [...document.querySelectorAll('h4')].map(h => h.textContent),
          stages: [...document.querySelectorAll('tr.stage td:first-child')].map(td => td.textContent)};
})()
"""


def test_overview_shows_everything_at_a_glance(page, report, shots):
    _, res = report
    page.evaluate("ui.show('0. Overview', 'Other', 'results/demo/overview.html')")
    probe = page.frame_evaluate(OVERVIEW_PROBE, seconds=30)
    assert probe["headings"] == ["Data funnel", "Rounds", "Contact sheets", "Training curves", "Ranking", "Samples",
                                 "Figures", "Videos", "Projections: target | reconstruction", "Edits"]
    assert probe["stages"] == [r["stage"] for r in read_tsv(res / "report/funnel.tsv") if not r["dropped_reason"]]
    # 6 contact sheets, 2 rounds x 2 curves, 1 histogram + 2 keep sheets, the grid, 5 figures, a projection
    # sheet, the tag directions, the smile figure and one applied edit
    assert len(probe["images"]) == 6 + 4 + 3 + 1 + 5 + 1 + 3 and all(i["ok"] for i in probe["images"])
    for image in probe["images"]:  # small images enlarged by a whole factor, to over half of 480 px
        factor = image["shown"] / image["natural"]
        assert factor == round(factor) and image["shown"] > 240, image
    assert len(probe["videos"]) == 4 and all(v["error"] is None and v["ready"] >= 2 for v in probe["videos"])
    _shot(page, shots / "0-overview.png")
    page.pump(0.3)
    assert page.errors == []
