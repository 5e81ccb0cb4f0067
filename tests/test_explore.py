"""The explorer: settings become the same pixels whatever shares their batch and whether the
server or `--render` makes them; a real headless Chromium drives the page (seed click, psi
slider, style mix, edit) and every image it shows equals the command line's; bad requests
get a clear 4xx and the server keeps serving; uploads are projected."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from chromium import Browser
from ganflow import edit, explore, networks, project, samples, weights
from ganflow.runlog import SetupError
from test_samples import tiny_generator
from workflow import REPO

RES = 16


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """results/demo of a tiny run: two rounds (the explorer opens the last), SeFa directions
    and one saved projection."""
    root = tmp_path_factory.mktemp("explore") / "results" / "demo"
    keras.utils.set_random_seed(3)
    G = tiny_generator(RES)
    D = networks.Discriminator(resolution=RES, channel_base=128, channel_max=16)
    weights.write_export(root / "round-2" / "train", G, D, {})
    weights.write_export(root / "round-10" / "train", G, D, {})
    edit.make_directions(G, "sefa", root / "edits" / "sefa.npz", k=2, samples=500)
    project.save_npz(root / "project" / "ref" / "w.npz",
                     {"w": samples.map_latents(G, samples.latents([42], G.z_dim), 0.5)[:1]})
    return root


@pytest.fixture(scope="module")
def ex(results) -> explore.Explorer:
    return explore.Explorer(explore.find_run(results))


def S(**kwargs) -> explore.Settings:
    return explore.Settings(**kwargs)


def test_find_run_picks_the_last_round_or_the_import(results, tmp_path):
    run = explore.find_run(results)
    assert run.export == results / "round-10" / "train"  # 10 after 2: by number, not by name
    assert (run.edits, run.projects) == (results / "edits", results / "project")
    assert explore.find_run(results / "round-2" / "train").edits == results / "edits"
    imported = tmp_path / "results" / "x" / "imported"
    imported.mkdir(parents=True)
    (imported / "export.json").write_text("{}")
    assert explore.find_run(imported.parent).export == imported
    with pytest.raises(SetupError, match="holds no exported generator"):
        explore.find_run(tmp_path)


def test_an_image_does_not_depend_on_its_batch(ex):
    target = S(seed=5, psi=0.6, mix=explore.Mix(seed=8, layers="fine"), edits={"sefa-1": 1.5})
    alone = ex.render([target])[0]
    others = [S(seed=1), S(seed=2, noise="random", draw=3), S(seed=3, noise="none"), target, S(seed=4, psi=-0.5)]
    for batch in (ex.render(others), ex.render(others + [S(seed=20 + i) for i in range(3)])):
        assert np.array_equal(batch[3], alone)
        assert len({img.tobytes() for img in batch}) == len(batch)
    assert len(batch) == explore.MAX_BATCH


def test_every_setting_changes_the_image_as_it_should(ex):
    def img(**kwargs) -> np.ndarray:
        return ex.render([S(**kwargs)])[0]

    base = img(seed=7)
    assert not np.array_equal(base, img(seed=7, psi=0.2))
    assert np.array_equal(img(seed=7, psi=0.0), img(seed=8, psi=0.0))  # psi 0: the average image
    assert not np.array_equal(base, img(seed=7, noise="none"))
    assert not np.array_equal(img(seed=7, noise="random"), img(seed=7, noise="random", draw=1))
    assert np.array_equal(img(seed=7, edits={"sefa-0": 0.0}), base)
    assert not np.array_equal(img(seed=7, edits={"sefa-0": 2.0}), base)
    coarse = img(seed=7, mix={"seed": 9, "layers": "coarse"})
    assert not np.array_equal(coarse, base)
    # a per-layer cutoff over every w is the mix seed itself, its range as a group's the same image
    assert np.array_equal(img(seed=7, mix={"seed": 9, "start": 0, "stop": ex.G.num_ws}), img(seed=9))
    start, stop = ex.groups["coarse"]
    assert np.array_equal(img(seed=7, mix={"seed": 9, "start": start, "stop": stop}), coarse)


def test_seed_images_are_the_samples_stage_ones(ex, tmp_path):
    """Same z, w and noise as samples.py; only compiled-graph rounding may differ (one level)."""
    paths = samples.make_samples(ex.G, [0, 11], 0.7, tmp_path / "s", tmp_path / "grid.png")
    ours = ex.render([S(seed=0), S(seed=11)])
    for path, mine in zip(paths, ours):
        theirs = np.asarray(Image.open(path)).astype(int)
        assert np.abs(theirs - mine).max() <= 1
        assert np.mean(theirs == mine) > 0.99


def test_settings_are_checked(ex):
    for bad in ({"seed": "7"}, {"seed": -1}, {"seed": 2 ** 32}, {"seed": 1.5}, {"psi": float("nan")},
                {"psi": 9}, {"noise": "loud"}, {"shell": "rm -rf /"}, {"edits": {"sefa-0": 50}},
                {"mix": {"seed": 1, "layers": "../x"}}):
        with pytest.raises(ValidationError):
            explore.Settings.model_validate(bad)
    for bad, message in ((S(edits={"../../etc/passwd": 1.0}), "direction '../../etc/passwd' is not known"),
                         (S(mix={"seed": 1, "layers": "fine", "start": 0, "stop": 2}), "not both"),
                         (S(mix={"seed": 1, "start": 3, "stop": 3}), "start < stop"),
                         (S(w=[[0.0] * ex.G.w_dim]), "must be 6 rows of 8 finite numbers")):
        with pytest.raises(SetupError, match=message):
            ex.check(bad)


def test_a_slider_goes_before_a_waiting_grid(ex):
    worker, finished = explore.Worker(ex), []
    grid = [worker.submit(S(seed=i), priority=1) for i in range(explore.MAX_ITEMS)]
    slider = worker.submit(S(seed=999, psi=0.3))
    for name, future in [("slider", slider), *enumerate(grid)]:
        future.add_done_callback(lambda _, name=name: finished.append(name))
    assert np.array_equal(slider.result(timeout=60), ex.render([S(seed=999, psi=0.3)])[0])
    grid[-1].result(timeout=60)
    # the worker takes at most a batch or two of the grid before the slider arrives
    assert finished.index("slider") < explore.MAX_ITEMS // 2
    assert all(np.array_equal(f.result(timeout=60), ex.render([S(seed=i)])[0]) for i, f in enumerate(grid[:3]))


def test_the_page_needs_nothing_from_the_network():
    page = (REPO / "ganflow" / explore.PAGE).read_text()
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", page)
    assert "import " not in page and "<script src" not in page


def test_the_command_line_refuses_another_host_unless_asked(capsys):
    with pytest.raises(SystemExit) as exit_:
        explore.main(["results/nothing", "--host", "0.0.0.0"])
    assert exit_.value.code == 2 and "--allow-remote" in capsys.readouterr().err
    assert explore.is_local("::1") and explore.is_local("localhost") and not explore.is_local("192.168.1.2")
    assert explore.command(["train"]) == 2


# ----- the live server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(results, tmp_path_factory):
    """`python -m ganflow.explore results/demo --port 0`: the address it prints."""
    log = tmp_path_factory.mktemp("server") / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ganflow.explore", str(results), "--port", "0",
                                 "--project-steps", "5"], cwd=REPO, stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    line, deadline = b"", time.monotonic() + 120
    while b"http://" not in line and time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stdout], [], [], 1)[0]:
            line = proc.stdout.readline()
    if b"http://" not in line:
        proc.kill()
        pytest.fail(f"the explorer did not start: {log.read_text()[-3000:]}")
    url = line.decode().split("http://", 1)[1].split("/", 1)[0]
    assert url.startswith("127.0.0.1:")
    yield f"http://{url}"
    proc.terminate()
    proc.wait(timeout=20)


def call(url: str, path: str, body=None, *, headers: dict | None = None, method: str | None = None
         ) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    headers = {"Content-Type": "application/json", **(headers or {})} if data is not None else {}
    req = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def raw(url: str, method: str, path: str, headers: dict | None = None, body: bytes = b"") -> tuple[int, bytes]:
    """A request sent as written (urllib would normalise the path or fix the length)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest(method, path, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders(body or None)
    r = conn.getresponse()
    out = r.status, r.read()
    conn.close()
    return out


def multipart(data: bytes, name: str = "face.png") -> tuple[bytes, dict]:
    boundary = "ganflowtestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(server):
    cases = [
        ("unknown seed type", "/api/render", {"seed": "banana"}, 422, "valid integer"),
        ("seed out of range", "/api/render", {"seed": 2 ** 40}, 422, "less than or equal"),
        ("a field nobody knows", "/api/render", {"seed": 1, "exec": "import os"}, 422, "not permitted"),
        ("huge batch", "/api/batch", {"items": [{"seed": i} for i in range(explore.MAX_ITEMS + 1)]}, 422,
         "at most 64 items"),
        ("traversal in a direction", "/api/render", {"seed": 1, "edits": {"../../../etc/passwd": 1}}, 422,
         "is not known"),
        ("mix beyond the styles", "/api/render", {"seed": 1, "mix": {"seed": 2, "start": 0, "stop": 99}}, 422,
         "start < stop"),
        ("w of the wrong shape", "/api/render", {"w": [[1.0, 2.0]]}, 422, "rows of 8"),
        ("traversal in a projection", "/api/projection/..%2F..%2F..%2Fetc%2Fpasswd", None, 404, "Not Found"),
        ("a projection's parent", "/api/projection/..", None, 404, "not known"),
        ("traversal in a job", "/api/project/..%5C..%5Cexport.json", None, 404, "not known"),
    ]
    for what, path, body, status, words in cases:
        code, text = call(server, path, body)
        assert (code, words in text.decode()) == (status, True), (what, code, text[:300])
    # the path itself, sent as written: nothing outside the app is served
    for path in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/static/../pyproject.toml",
                 "/ganflow/explore.py"):
        assert raw(server, "GET", path)[0] == 404, path
    huge = {"Content-Type": "application/json", "Content-Length": str(explore.MAX_BODY + 1)}
    assert raw(server, "POST", "/api/render", huge)[0] == 413
    body, headers = multipart(b"this is not an image")
    code, text = call(server, "/api/project", body, headers=headers)
    assert code == 422 and b"not a readable image" in text
    body, headers = multipart(b"\0" * (explore.MAX_UPLOAD + 1))
    assert call(server, "/api/project", body, headers=headers)[0] == 413
    assert call(server, "/api/info")[0] == 200
    code, png = call(server, "/api/render", {"seed": 3})
    assert code == 200 and pixels(png).shape == (RES, RES, 3)


def test_uploads_are_projected_and_saved_projections_load(server, ex, results):
    code, png = call(server, "/api/render", {"seed": 12, "psi": 0.5})
    body, headers = multipart(png)
    code, text = call(server, "/api/project", body, headers=headers)
    assert code == 200, text
    job = json.loads(text)
    assert np.array_equal(pixels(base64.b64decode(job["target"].split(",", 1)[1])), pixels(png))
    deadline = time.monotonic() + 60
    while (state := json.loads(call(server, f"/api/project/{job['job']}")[1]))["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the projection did not finish"
        time.sleep(0.2)
    assert state["state"] == "done", state
    w = np.array(state["w"])
    assert w.shape == (ex.G.num_ws, ex.G.w_dim) and np.isfinite(w).all()
    assert call(server, "/api/render", {"w": state["w"]})[0] == 200
    code, text = call(server, "/api/projection/ref")
    saved, _ = project.load_w(results / "project" / "ref" / "w.npz", ex.G)
    assert code == 200 and np.array_equal(np.array(json.loads(text)["w"], np.float32), saved)


# ----- the page in a real browser ---------------------------------------------------------------

SHOT = """(async () => {
  await explorer.idle();
  const buf = await (await fetch(document.getElementById('main').src)).arrayBuffer();
  let s = ''; new Uint8Array(buf).forEach(b => s += String.fromCharCode(b));
  return {png: btoa(s), settings: explorer.shown()};
})()"""


def click(browser: Browser, selector: str) -> None:
    """A real mouse click in the middle of the element."""
    box = browser.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                           ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                  "clickCount": 1}, session=browser.session)


def set_value(browser: Browser, element: str, value, events=("input", "change")) -> None:
    fire = "".join(f"e.dispatchEvent(new Event('{k}', {{bubbles: true}}));" for k in events)
    browser.evaluate(f"(() => {{ const e = document.getElementById('{element}'); "
                     f"if (e.type === 'checkbox') e.checked = {json.dumps(value)}; else e.value = {json.dumps(value)}; "
                     f"{fire} }})()")


@pytest.mark.slow  # a Chromium, a server and the command line, each loading TensorFlow or a browser
def test_the_page_in_a_browser_shows_what_the_command_line_renders(server, tmp_path):
    browser = Browser(tmp_path / "profile", width=1400, height=900)
    try:
        browser.open(server + "/")
        browser.evaluate("explorer.ready")
        loaded = browser.evaluate("[...document.querySelectorAll('#grid img')].map(i => i.complete && "
                                  "i.naturalWidth)")
        assert loaded == [RES] * 24
        shots = [browser.evaluate(SHOT)]
        assert shots[0]["settings"]["seed"] == 0
        click(browser, '#grid button[data-seed="5"]')
        shots.append(browser.evaluate(SHOT))
        assert shots[-1]["settings"]["seed"] == 5
        assert browser.evaluate("document.querySelector('#grid button.focus').dataset.seed") == "5"
        set_value(browser, "psi", "0.25")
        shots.append(browser.evaluate(SHOT))
        assert shots[-1]["settings"]["psi"] == 0.25
        set_value(browser, "mix-seed", "9", ("change",))
        set_value(browser, "mix-on", True, ("change",))
        shots.append(browser.evaluate(SHOT))
        assert shots[-1]["settings"]["mix"] == {"seed": 9, "layers": "coarse"}
        set_value(browser, "mix-layers", "custom", ("change",))
        set_value(browser, "mix-stop", "5", ("input",))
        shots.append(browser.evaluate(SHOT))
        assert shots[-1]["settings"]["mix"] == {"seed": 9, "start": 0, "stop": 5}
        browser.evaluate("(() => { const e = document.querySelector('#edits input[data-direction=\"sefa-0\"]');"
                         " e.value = 2; e.dispatchEvent(new Event('input')); })()")
        shots.append(browser.evaluate(SHOT))
        assert shots[-1]["settings"]["edits"] == {"sefa-0": 2}
        browser.evaluate("document.getElementById('resample').click()")
        shots.append(browser.evaluate(SHOT))
        assert shots[-1]["settings"]["noise"] == "random" and shots[-1]["settings"]["draw"] == 1
        browser.screenshot(tmp_path / "explore.png")
        assert browser.errors == [], browser.errors
        assert browser.evaluate("document.getElementById('error').textContent") == ""
    finally:
        browser.close()
    images = [pixels(base64.b64decode(s["png"])) for s in shots]
    assert all(not np.array_equal(a, b) for a, b in zip(images, images[1:])), "every step must change the image"
    # the command line, from each step's settings, and from the PNG the download button gets
    args = []
    for i, shot in enumerate(shots):
        (tmp_path / f"{i}.json").write_text(json.dumps(shot["settings"]))
        args += ["--render", str(tmp_path / f"{i}.json"), str(tmp_path / f"{i}.png")]
    code, download = call(server, "/api/download", shots[-1]["settings"])
    assert code == 200 and np.array_equal(pixels(download), images[-1])
    (tmp_path / "download.png").write_bytes(download)
    carried = json.loads(Image.open(tmp_path / "download.png").text[explore.SETTINGS_KEY])
    assert carried["seed"] == 5 and carried["mix"]["stop"] == 5 and len(carried["w"]) == 6
    args += ["--render", str(tmp_path / "download.png"), str(tmp_path / "again.png")]
    run = json.loads(call(server, "/api/info")[1])["run"]
    subprocess.run([sys.executable, "-m", "ganflow.explore", run, *args], cwd=REPO, check=True,
                   capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    for i, image in enumerate(images):
        assert np.array_equal(pixels((tmp_path / f"{i}.png").read_bytes()), image), f"step {i}"
    assert np.array_equal(pixels((tmp_path / "again.png").read_bytes()), images[-1])
