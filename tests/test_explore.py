"""The explorer: settings become the same pixels whatever shares their batch and whether the
server or `--render` makes them; a real headless Chromium drives the page (seed click, psi
slider, style mix, edit) and every image it shows equals the command line's; bad requests
get a clear 4xx and the server keeps serving; uploads are projected. Hostile requests
(another origin, another Host, image bombs, oversized bodies, abandoned or endless work)
are refused before they cost anything. Only 127.0.0.1 is contacted; every request has a
timeout and every loop a deadline."""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
import uvicorn
from PIL import Image
from pydantic import ValidationError

from chromium import Browser
from ganflow import edit, explore, latents, networks, samples, tables, weights
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
    tables.save_npz(root / "project" / "ref" / "w.npz",
                     {"w": latents.map_latents(G, latents.seed_z([42], G.z_dim), 0.5)[:1]})
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


def test_the_page_starts_at_the_psi_of_the_runs_samples(results, ex, tmp_path):
    """The samples stage records the psi it used; the explorer of that run starts there, from
    the results folder or from an export inside it; a broken record falls back to the default."""
    assert explore.find_run(results).psi == latents.DEFAULT_PSI  # no samples yet
    record = results / "samples" / "settings.json"
    samples.make_samples(ex.G, [3], 0.45, tmp_path / "seeds", tmp_path / "grid.png", settings_json=record)
    assert json.loads(record.read_text()) == {"psi": 0.45, "noise_mode": "const"}
    for where in (results, results / "round-2" / "train"):
        assert explore.find_run(where).psi == 0.45
        assert explore.Explorer(explore.find_run(where)).info()["psi"] == 0.45
    for broken in ("{", '{"psi": "x"}', '{"psi": 99}'):
        record.write_text(broken)
        assert explore.find_run(results).psi == latents.DEFAULT_PSI
    record.unlink()


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


# ----- the live server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(results, tmp_path_factory):
    """`python -m ganflow.explore results/demo --port 0`: the address it prints, and the process."""
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
    yield f"http://{url}", proc
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def server(served) -> str:
    return served[0]


PAGE = {"X-Ganflow": "1"}  # what the page sends on every request


def call(url: str, path: str, body=None, *, headers: dict | None = None, method: str | None = None
         ) -> tuple[int, bytes]:
    """A request as the page makes it (with its X-Ganflow header)."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    headers = {"Content-Type": "application/json", **(headers or {})} if data is not None else {}
    req = urllib.request.Request(url + path, data=data, headers={**PAGE, **headers}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def raw(url: str, method: str, path: str, headers: dict | None = None, body: bytes = b"", timeout: float = 60
        ) -> tuple[int, bytes, dict]:
    """A request sent as written (urllib would normalise the path, fix the length or the Host):
    status, body and headers of the answer."""
    host, port = url.removeprefix("http://").split(":")
    headers = headers or {}
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders(body or None)
    r = conn.getresponse()
    out = r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
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
    huge = {**PAGE, "Content-Type": "application/json", "Content-Length": str(16 << 20)}
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
    saved, _ = latents.load_w(results / "project" / "ref" / "w.npz", ex.G)
    assert code == 200 and np.array_equal(np.array(json.loads(text)["w"], np.float32), saved)


# ----- hostile requests -----------------------------------------------------------------------

EVIL = "http://evil.example"
JSON = {**PAGE, "Content-Type": "application/json"}


def until(condition, seconds: float = 30) -> None:
    """Wait for a condition another thread or process brings about, for a bounded time."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def with_length(headers: dict, body: bytes) -> dict:
    return {**headers, "Content-Length": str(len(body))}


def png_claiming(width: int, height: int, rows: int | None = None) -> bytes:
    """An RGB PNG whose header says width x height and whose pixel data is `rows` rows of
    zeros (all of them when None) in a properly ended zlib stream: a decompression bomb when
    the size is large (zeros compress 1000:1), a truncated file when rows is short."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row, packer, left, parts = b"\0" * (1 + 3 * width), zlib.compressobj(9), height if rows is None else rows, []
    while left:
        n = min(left, max(1, (4 << 20) // len(row)))
        parts.append(packer.compress(row * n))
        left -= n
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts) + packer.flush())
            + chunk(b"IEND", b""))


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def test_only_the_pages_own_requests_change_state(server):
    """A page on another origin can post a form or a 'simple' request to 127.0.0.1, but
    cannot add X-Ganflow without a CORS preflight (never approved), nor hide its Origin or
    Sec-Fetch-Site: each such request is refused before it is read."""
    host = server.removeprefix("http://")
    seed = b'{"seed": 12}'
    status, face, _ = raw(server, "POST", "/api/render", with_length(JSON, seed), seed)
    assert status == 200
    form, form_headers = multipart(face)
    cases = [
        ("a cross-origin form upload", "/api/project",
         {**form_headers, "Origin": EVIL, "Sec-Fetch-Site": "cross-site"}, form),
        ("an upload without the page's header", "/api/project", form_headers, form),
        ("a text/plain 'simple' request", "/api/render", {"Content-Type": "text/plain", "Origin": EVIL}, seed),
        ("the header with a foreign Origin", "/api/render", {**JSON, "Origin": EVIL}, seed),
        ("the header from a sandboxed frame", "/api/download", {**JSON, "Origin": "null"}, seed),
        ("the header from another site", "/api/render", {**JSON, "Sec-Fetch-Site": "cross-site"}, seed),
        ("the header from another port", "/api/render",
         {**JSON, "Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}, seed),
        ("another header value", "/api/batch", {**JSON, "X-Ganflow": "yes"}, b'{"items": [{"seed": 1}]}'),
    ]
    for what, path, headers, body in cases:
        status, text, _ = raw(server, "POST", path, with_length(headers, body), body)
        assert status == 403, (what, status, text[:300])
        assert "\n" not in json.loads(text)["detail"]
    # the preflight a cross-origin page needs before it may send the header is not approved
    status, _, headers = raw(server, "OPTIONS", "/api/render", {
        "Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-ganflow"})
    assert status >= 400 and not any(k.startswith("access-control-allow") for k in headers)
    # the page's own request, as Chromium sends it, passes; the refused upload started nothing
    own = {**JSON, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    assert raw(server, "POST", "/api/render", with_length(own, seed), seed)[:2] == (200, face)
    status, text, _ = raw(server, "POST", "/api/project", with_length({**PAGE, **form_headers}, form), form)
    assert status == 200, text  # not 429: no projection was running
    until(lambda: json.loads(call(server, f"/api/project/{json.loads(text)['job']}")[1])["state"] == "done", 60)


def test_requests_for_other_host_names_are_refused(server):
    """DNS rebinding: evil.example, resolved to 127.0.0.1, makes its page same-origin with
    itself and lets it reach this port; only the Host header tells it apart, on every route."""
    port = int(server.rsplit(":", 1)[1])
    requests = [("GET", "/", {}, b""), ("GET", "/api/info", {}, b""), ("GET", "/api/projection/ref", {}, b""),
                ("POST", "/api/render", JSON, b'{"seed": 1}')]
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", f"localhost.:{port}",
                 f"127.0.0.1.nip.io:{port}", f"[::1]:{port}", f"127.0.0.1:{port}@evil.example"):
        for method, path, headers, body in requests:
            headers = {"Host": host, **(with_length({**headers, "Origin": f"http://{host}"}, body) if body else {})}
            status, text, _ = raw(server, method, path, headers, body)
            assert status == 421 and b"answers requests for" in text, (host, method, path, status, text[:200])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # HTTP/1.0 needs no Host
        sock.sendall(b"GET /api/info HTTP/1.0\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 421")
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}"):
        assert raw(server, "GET", "/api/info", {"Host": host})[0] == 200, host


def test_the_host_names_a_server_answers():
    assert explore.allowed_hosts("127.0.0.1", 8000) == {"127.0.0.1:8000", "localhost:8000"}
    assert explore.allowed_hosts("::1", 80) == {"127.0.0.1:80", "localhost:80", "[::1]:80", "127.0.0.1",
                                                 "localhost", "[::1]"}
    assert explore.allowed_hosts("0.0.0.0", 8000, ["GPU7", "localhost:9000", "[fe80::1]:81", "fe80::2"]) == {
        "127.0.0.1:8000", "localhost:8000", "0.0.0.0:8000", "gpu7:8000", "localhost:9000", "[fe80::1]:81",
        "[fe80::2]:8000"}


def test_bodies_are_capped_from_their_header_before_any_is_read(server, ex):
    """Only the headers are sent: a server that waited for the body would not answer."""
    multipart_headers = {**PAGE, "Content-Type": "multipart/form-data; boundary=x"}
    cases = [("POST", "/api/render", JSON, 16 << 20, 413),
             ("POST", "/api/batch", JSON, explore.json_limit(ex) + 1, 413),
             ("POST", "/api/download", JSON, 1 << 40, 413),
             ("POST", "/api/project", multipart_headers, explore.MAX_FORM + 1, 413),
             ("GET", "/api/info", {}, 1 << 20, 413),  # a route that takes no body takes none
             ("POST", "/api/render", JSON, None, 411),
             ("POST", "/api/render", {**JSON, "Transfer-Encoding": "chunked"}, None, 411)]
    for method, path, headers, length, status in cases:
        t0 = time.monotonic()
        got, text, _ = raw(server, method, path, {**headers, **({} if length is None else {
            "Content-Length": str(length)})}, timeout=10)
        assert (got, time.monotonic() - t0 < 5) == (status, True), (method, path, length, got, text[:200])
    # the page's largest request, one image from a projection's w, is well within its cap
    w = [[0.123456789012345678] * ex.G.w_dim for _ in range(ex.G.num_ws)]
    assert len(json.dumps({"seed": 1, "w": w})) < explore.json_limit(ex) - explore.MAX_JSON
    assert call(server, "/api/info")[0] == 200


def streamed(app, path: str, declared: int, chunk: int, chunks: int) -> list[dict]:
    """What an ASGI app sends back for a POST that says `declared` bytes and sends more."""
    messages = iter([{"type": "http.request", "body": b" " * chunk, "more_body": True}] * chunks)
    sent: list[dict] = []

    async def receive():
        return next(messages, {"type": "http.disconnect"})

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "server": ("127.0.0.1", 1),
             "headers": [(b"host", b"127.0.0.1:1"), (b"x-ganflow", b"1"), (b"content-type", b"application/json"),
                         (b"content-length", str(declared).encode())]}
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_body_that_runs_past_its_cap_is_refused_as_it_streams(ex):
    """The server holds a body to its Content-Length; the guard does not count on that."""
    read: list[int] = []

    async def reader(scope, receive, send):
        while (message := await receive()).get("more_body"):
            read.append(len(message["body"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = explore.Guard(reader, frozenset({"127.0.0.1:1"}), {("POST", "/up"): 100})
    sent = streamed(guard, "/up", 50, 60, 10)
    assert sent[0]["status"] == 413 and sum(read) <= 100 and b"limit of 100 bytes" in sent[1]["body"]
    # the same through the app: FastAPI's body parsing stops at the cap
    app = explore.create_app(ex, explore.Worker(ex), explore.Projector(ex), frozenset({"127.0.0.1:1"}))
    sent = streamed(app, "/api/render", 10, 1 << 16, explore.json_limit(ex) // (1 << 16) + 2)
    assert sent[0]["status"] == 413, sent


def test_image_bombs_and_truncated_images_are_refused_before_decoding(served):
    """Sizes come from the header: the 138-byte 20000x20000 claim (1.2 GB decoded) and a real
    25 MP bomb are refused in moments, and the server's peak memory does not move."""
    server, proc = served
    status, png, _ = raw(server, "POST", "/api/render", with_length(JSON, b'{"seed": 4}'), b'{"seed": 4}')
    before = peak_rss_mb(proc.pid)
    claim = png_claiming(20000, 20000, rows=1)
    assert len(claim) == 138
    cases = [("a 20000x20000 claim", claim, 413, "20000x20000 pixels"),
             ("a 5000x5000 bomb", png_claiming(5000, 5000), 413, "5000x5000 pixels"),
             ("pixel data that ends early", png_claiming(64, 64, rows=3), 422, "truncated"),
             ("a file cut short", png[:len(png) // 2], 422, "truncated"),
             ("a format the explorer does not take", b"%!PS-Adobe-3.0 EPSF-3.0\n", 422, "not a PNG, JPEG")]
    for what, data, status, words in cases:
        body, headers = multipart(data)
        t0 = time.monotonic()
        got, text, _ = raw(server, "POST", "/api/project", with_length({**PAGE, **headers}, body), body, timeout=30)
        assert (got, words in text.decode(), time.monotonic() - t0 < 10) == (status, True, True), (what, got, text)
    assert peak_rss_mb(proc.pid) - before < 100


@pytest.fixture
def held(ex):
    """The app served in this process on 127.0.0.1, its render worker and its projections
    held at a gate until the test opens it."""
    gate, rendered = threading.Event(), []

    class Held:
        def __getattr__(self, name):
            return getattr(ex, name)

        def render(self, items):
            gate.wait(60)
            rendered.extend(items)
            return ex.render(items)

    def project(key, target):
        gate.wait(60)
        projector.jobs[key].state = "done"

    worker, projector = explore.Worker(Held()), explore.Projector(ex)
    projector._project = project
    sock = explore.listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = explore.create_app(ex, worker, projector, explore.allowed_hosts("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    until(lambda: server.started)
    yield types.SimpleNamespace(url=f"http://127.0.0.1:{port}", gate=gate, rendered=rendered, worker=worker,
                                projector=projector)
    gate.set()
    server.should_exit = True
    thread.join(15)


def send_only(url: str, path: str, headers: dict, body: bytes) -> socket.socket:
    """A POST whose client will hang up instead of reading the answer."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = "".join(f"{k}: {v}\r\n" for k, v in with_length(headers, body).items())
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}\r\n".encode() + body)
    return sock


def test_the_queue_is_bounded_and_work_for_clients_that_hung_up_is_dropped(held):
    grid = json.dumps({"items": [{"seed": i} for i in range(explore.MAX_ITEMS)]}).encode()
    clients = [send_only(held.url, "/api/batch", JSON, grid) for _ in range(2)]
    # the worker holds up to MAX_BATCH of the first grid at the gate; the rest waits
    until(lambda: held.worker.queue.qsize() >= 2 * explore.MAX_ITEMS - explore.MAX_BATCH)
    status, text, headers = raw(held.url, "POST", "/api/batch", with_length(JSON, grid), grid, timeout=10)
    assert (status, headers.get("retry-after")) == (503, "1"), text
    assert b"try again" in text
    for sock in clients:
        sock.close()
    until(lambda: all(job[3].cancelled() for job in list(held.worker.queue.queue)))
    held.gate.set()
    until(lambda: held.worker.queue.qsize() == 0)
    status, png, _ = raw(held.url, "POST", "/api/render", with_length(JSON, b'{"seed": 3}'), b'{"seed": 3}')
    assert status == 200
    assert len(held.rendered) <= explore.MAX_BATCH + 1  # the held batch and this image, no more


def test_an_upload_during_a_projection_is_refused_before_it_is_read(held, ex):
    face = explore.png_bytes(ex.render([S(seed=2)])[0])
    body, headers = multipart(face)
    status, text, _ = raw(held.url, "POST", "/api/project", with_length({**PAGE, **headers}, body), body)
    assert status == 200, text
    # busy goes first: not an image (422 once decoded) and a bomb (413 from its header) both get 429
    for data in (b"this is not an image", png_claiming(20000, 20000, rows=1)):
        body, headers = multipart(data)
        status, text, _ = raw(held.url, "POST", "/api/project", with_length({**PAGE, **headers}, body), body)
        assert status == 429 and b"already running" in text
    held.gate.set()
    until(lambda: not held.projector.busy())
    body, headers = multipart(b"this is not an image")
    assert raw(held.url, "POST", "/api/project", with_length({**PAGE, **headers}, body), body)[0] == 422
    assert not held.projector.busy()  # a refused upload gives the slot back


# ----- the page in a real browser ---------------------------------------------------------------

SHOT = """(async () => {
  await explorer.idle();
  const buf = await (await fetch(document.getElementById('main').src)).arrayBuffer();
  let s = ''; new Uint8Array(buf).forEach(b => s += String.fromCharCode(b));
  return {png: btoa(s), settings: explorer.shown()};
})()"""

PROJECTED = """(async () => {
  const t0 = Date.now(), status = () => document.getElementById('project-status').textContent;
  while (!status().startsWith('projected') && !document.getElementById('error').textContent && Date.now() - t0 < 45000)
    await new Promise(f => setTimeout(f, 200));
  return status() + document.getElementById('error').textContent;
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
        # an image uploaded through the page (a form post, with the page's header) is projected
        (tmp_path / "face.png").write_bytes(base64.b64decode(shots[0]["png"]))
        upload = browser.send("Runtime.evaluate", {"expression": "document.getElementById('upload')"},
                              session=browser.session)["result"]["objectId"]
        browser.send("DOM.setFileInputFiles", {"files": [str(tmp_path / "face.png")], "objectId": upload},
                     session=browser.session)
        browser.evaluate("document.getElementById('project').click()")
        assert browser.evaluate(PROJECTED).startswith("projected"), browser.evaluate("explorer.state")
        assert len(browser.evaluate("explorer.state.w")) == 6
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
