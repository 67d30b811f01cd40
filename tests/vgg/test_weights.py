"""Weights: where the file is found, how it is downloaded (from a loopback server), and how it is read.

Every test runs with $LEGACY_NST_WEIGHTS_DIR / $LEGACY_NST_WEIGHTS_URL unset and weights.PROJECT_DIR /
weights.KERAS_CACHE pointed at empty temporary directories, so nothing here touches the real weights/,
~/.keras or the internet.
"""
import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from support import save_keras_h5, synthetic_weights

from legacy_nst.errors import UserError
from legacy_nst.vgg import download, weights
from legacy_nst.vgg.architecture import conv_layers, conv_shapes

REAL_MD5 = "0aac8661d54724f64a072308c61aa7b3"  # /work/shared/weights/README.md
PREVIEW_LAYERS = ["block3_conv2", "block1_conv1", "block2_conv1", "block3_conv1"]
BLOCK1_3 = [name for name in conv_layers("vgg19") if name[5] in "123"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No environment overrides; the project's weights/ and the Keras cache are empty temp dirs."""
    monkeypatch.delenv(weights.ENV_DIR, raising=False)
    monkeypatch.delenv(weights.ENV_URL, raising=False)
    project, cache = tmp_path / "project_weights", tmp_path / "keras_cache"
    project.mkdir()
    cache.mkdir()
    monkeypatch.setattr(weights, "PROJECT_DIR", project)
    monkeypatch.setattr(weights, "KERAS_CACHE", cache)
    return project, cache


def _listing(directory):
    return sorted(p.name for p in Path(directory).iterdir())


def _md5(data):
    return hashlib.md5(data).hexdigest()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------------------
# a loopback HTTP server


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the server closes the connection after each response

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        body, mode = route
        if mode == "redirect":  # body: the Location
            self.send_response(302)
            self.send_header("Location", body)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "trickle":  # Content-Length promises the whole body, one byte comes every 0.2 s
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(len(body)):
                try:
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return
                time.sleep(0.2)
            return
        if mode == "chunked-drop":  # a chunked body whose connection dies before the last chunk
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            half = body[: len(body) // 2]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "short":  # Content-Length promises the whole file, the connection ends halfway
            self.wfile.write(body[: len(body) // 2])
        else:
            self.wfile.write(body)
        self.wfile.flush()


@pytest.fixture
def server():
    """http.server on 127.0.0.1, a free port, in a thread. `server.serve(path, body, mode)` adds a route."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes, httpd.requests = {}, []
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"

    def serve(path, body, mode="whole"):
        httpd.routes[path] = (body, mode)
        return httpd.base + path

    httpd.serve = serve
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def partial_h5(tmp_path_factory):
    """A small VGG19 file in the canonical layout holding blocks 1-3 (enough for the preview layers)."""
    path = tmp_path_factory.mktemp("partial") / "vgg19_block1-3.h5"
    params = synthetic_weights("vgg19", seed=5, layers=BLOCK1_3)
    save_keras_h5(path, "vgg19", params)
    return path, params


def _assert_download_refused(exc_info, directory, dest_name, existed=False):
    """One line naming where the file belongs, and nothing left: no file, no temp file, and the directory
    gone again when the download made it."""
    message = str(exc_info.value)
    assert "\n" not in message
    assert dest_name in message and str(directory) in message and "--weights" in message
    if existed:
        assert _listing(directory) == []
    else:
        assert not Path(directory).exists()


# ---------------------------------------------------------------------------------------------------------
# resolution order


def _place(directory, network="vgg19", text="x"):
    path = Path(directory) / weights.CANONICAL[network].filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _no_download(*args, **kwargs):
    raise AssertionError(f"download attempted: {args}")


def test_explicit_path_wins_over_every_directory(isolated, tmp_path, monkeypatch):
    project, cache = isolated
    env_dir = tmp_path / "env"
    for directory in (env_dir, project, cache):
        _place(directory)
    monkeypatch.setenv(weights.ENV_DIR, str(env_dir))
    monkeypatch.setattr(weights, "download", _no_download)
    explicit = tmp_path / "mine.npz"
    explicit.write_bytes(b"any")
    assert weights.resolve("vgg19", str(explicit)) == explicit


def test_explicit_path_must_exist(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "download", _no_download)
    with pytest.raises(UserError, match="--weights .*no such file"):
        weights.resolve("vgg19", str(tmp_path / "missing.h5"))
    with pytest.raises(UserError, match="--weights .*(is a directory|no such file)"):
        weights.resolve("vgg19", str(tmp_path))  # a directory is not a weight file


def test_env_dir_comes_before_project_and_cache(isolated, tmp_path, monkeypatch):
    project, cache = isolated
    env_dir = tmp_path / "env"
    expected = _place(env_dir)
    _place(project)
    _place(cache)
    monkeypatch.setenv(weights.ENV_DIR, str(env_dir))
    monkeypatch.setattr(weights, "download", _no_download)
    assert weights.resolve("vgg19") == expected


def test_project_dir_comes_before_keras_cache(isolated, tmp_path, monkeypatch):
    project, cache = isolated
    monkeypatch.setenv(weights.ENV_DIR, str(tmp_path / "env_empty"))  # set but without the file
    expected = _place(project)
    _place(cache)
    monkeypatch.setattr(weights, "download", _no_download)
    assert weights.resolve("vgg19") == expected


def test_keras_cache_is_the_last_place_looked(isolated, monkeypatch):
    _, cache = isolated
    expected = _place(cache)
    monkeypatch.setattr(weights, "download", _no_download)
    assert weights.resolve("vgg19") == expected


def test_keras_cache_used_when_project_dir_is_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "PROJECT_DIR", tmp_path / "no_such_dir")
    expected = _place(weights.KERAS_CACHE)
    monkeypatch.setattr(weights, "download", _no_download)
    assert weights.resolve("vgg19") == expected


def test_each_network_looks_for_its_own_file(isolated, monkeypatch):
    project, _ = isolated
    vgg16 = _place(project, "vgg16")
    monkeypatch.setattr(weights, "download", _no_download)
    assert weights.resolve("vgg16") == vgg16
    calls = []
    monkeypatch.setattr(weights, "download", lambda url, dest, md5: calls.append((url, Path(dest), md5)) or dest)
    weights.resolve("vgg19")  # the VGG16 file does not count
    assert [dest.name for _, dest, _ in calls] == [weights.CANONICAL["vgg19"].filename]


def test_canonical_addresses_and_md5s():
    """The canonical Keras addresses and md5s of the README; the mirror variable replaces only the base."""
    assert weights.CANONICAL["vgg19"].url() == (
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert weights.CANONICAL["vgg16"].url() == (
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert weights.CANONICAL["vgg19"].md5 == "253f8cb515780f3b799900260a226db6"
    assert weights.CANONICAL["vgg16"].md5 == "6d6bbae143d832006294945121d1f1fc"


def test_mirror_variable_sets_the_base_url(monkeypatch):
    monkeypatch.setenv(weights.ENV_URL, "http://mirror.example/keras/")
    assert weights.CANONICAL["vgg16"].url() == (
        "http://mirror.example/keras/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")


def test_default_download_target_is_project_weights_dir(isolated, monkeypatch):
    project, _ = isolated
    calls = []
    monkeypatch.setattr(weights, "download", lambda url, dest, md5: calls.append((url, Path(dest), md5)) or dest)
    weights.resolve("vgg16")
    canonical = weights.CANONICAL["vgg16"]
    assert calls == [(canonical.url(), project / canonical.filename, canonical.md5)]


# ---------------------------------------------------------------------------------------------------------
# download, from a loopback server


def _serve_canonical(server, monkeypatch, network, body, md5=None, mode="whole", mirror="/mirror"):
    """Serve `body` as the canonical file of `network` under {base}/{network}/{filename}; md5 patched."""
    canonical = weights.CANONICAL[network]
    monkeypatch.setitem(weights.CANONICAL, network,
                        weights.CanonicalFile(network, canonical.filename, md5 or _md5(body)))
    monkeypatch.setenv(weights.ENV_URL, server.base + mirror)
    server.serve(f"{mirror}/{network}/{canonical.filename}", body, mode)
    return canonical.filename


def test_resolve_downloads_into_env_dir_and_the_file_loads(partial_h5, server, tmp_path, monkeypatch, capsys):
    path, params = partial_h5
    body = path.read_bytes()
    name = _serve_canonical(server, monkeypatch, "vgg19", body)
    env_dir = tmp_path / "env" / "not_yet_there"
    monkeypatch.setenv(weights.ENV_DIR, str(env_dir))
    got = weights.resolve("vgg19")
    assert got == env_dir / name
    assert server.requests == [f"/mirror/vgg19/{name}"]  # URL form {base}/{network}/{filename}
    assert got.read_bytes() == body
    assert _listing(env_dir) == [name]  # no temp file left beside it
    assert got.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert f"downloading {name}" in capsys.readouterr().err  # the tqdm progress bar
    loaded = weights.load_weights(got, "vgg19", PREVIEW_LAYERS)
    assert np.array_equal(loaded["block3_conv2"][0], params["block3_conv2"][0])
    # a second resolve finds the downloaded file and does not fetch again
    assert weights.resolve("vgg19") == got
    assert len(server.requests) == 1


def test_resolve_downloads_into_project_dir_without_env(isolated, server, monkeypatch):
    project, _ = isolated
    body = os.urandom(300_000)
    name = _serve_canonical(server, monkeypatch, "vgg16", body)
    project.rmdir()  # weights/ is created when needed
    got = weights.resolve("vgg16")
    assert got == project / name and got.read_bytes() == body
    assert _listing(project) == [name]


def test_download_direct(server, tmp_path):
    body = os.urandom(2_500_000)  # a few 1 MiB blocks
    url = server.serve("/f.h5", body)
    dest = tmp_path / "d" / "f.h5"
    assert download.download(url, dest, _md5(body)) == dest
    assert dest.read_bytes() == body
    assert _listing(dest.parent) == ["f.h5"]


def test_download_refuses_wrong_md5_and_leaves_nothing(server, tmp_path, monkeypatch):
    body = os.urandom(200_000)
    name = _serve_canonical(server, monkeypatch, "vgg19", body, md5="0" * 32)
    env_dir = tmp_path / "env"
    monkeypatch.setenv(weights.ENV_DIR, str(env_dir))
    with pytest.raises(UserError) as exc_info:
        weights.resolve("vgg19")
    assert "md5" in str(exc_info.value) and _md5(body) in str(exc_info.value) and "0" * 32 in str(exc_info.value)
    _assert_download_refused(exc_info, env_dir, name)


@pytest.mark.parametrize("mode", ["short", "chunked-drop"])
def test_download_cut_mid_file_leaves_nothing(mode, server, tmp_path):
    """Fewer bytes than Content-Length (urllib does not raise on that), and a chunked body cut short."""
    body = os.urandom(1_500_000)
    url = server.serve("/cut/f.h5", body, mode)
    dest_dir = tmp_path / "w"
    with pytest.raises(UserError) as exc_info:
        # the right md5: only the byte count or the broken stream can tell the file is incomplete
        download.download(url, dest_dir / "f.h5", _md5(body))
    assert "incomplete" in str(exc_info.value).lower()
    _assert_download_refused(exc_info, dest_dir, "f.h5")


def test_download_404(server, tmp_path, monkeypatch):
    # the mirror does not have the file: the server answers 404
    env_dir = tmp_path / "env"
    monkeypatch.setenv(weights.ENV_DIR, str(env_dir))
    monkeypatch.setenv(weights.ENV_URL, server.base + "/empty-mirror")
    name = weights.CANONICAL["vgg19"].filename
    with pytest.raises(UserError) as exc_info:
        weights.resolve("vgg19")
    assert "404" in str(exc_info.value) and server.base in str(exc_info.value)
    assert server.requests == [f"/empty-mirror/vgg19/{name}"]
    _assert_download_refused(exc_info, env_dir, name)


def test_download_unreachable_names_where_to_put_the_file(isolated, closed_port, monkeypatch):
    project, _ = isolated
    monkeypatch.setenv(weights.ENV_URL, f"http://127.0.0.1:{closed_port}")
    canonical = weights.CANONICAL["vgg19"]
    with pytest.raises(UserError) as exc_info:
        weights.resolve("vgg19")
    message = str(exc_info.value)
    assert "could not download" in message and f"127.0.0.1:{closed_port}" in message
    assert canonical.md5 in message and weights.ENV_DIR in message
    _assert_download_refused(exc_info, project, canonical.filename, existed=True)


def test_download_bad_mirror_address_is_a_user_error(isolated, monkeypatch):
    project, _ = isolated
    monkeypatch.setenv(weights.ENV_URL, "127.0.0.1:9/no-scheme")
    with pytest.raises(UserError) as exc_info:
        weights.resolve("vgg19")
    _assert_download_refused(exc_info, project, weights.CANONICAL["vgg19"].filename, existed=True)


def test_empty_environment_variables_count_as_unset(isolated, monkeypatch):
    project, _ = isolated
    for value in ("", "  "):
        monkeypatch.setenv(weights.ENV_URL, value)
        monkeypatch.setenv(weights.ENV_DIR, value)
        assert weights.CANONICAL["vgg19"].url() == (
            "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
            "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
        assert Path(value) not in weights.search_dirs()
        calls = []
        monkeypatch.setattr(weights, "download", lambda url, dest, md5: calls.append(Path(dest)) or dest)
        weights.resolve("vgg19")
        assert calls == [project / weights.CANONICAL["vgg19"].filename]


@pytest.fixture
def listener():
    """A TCP port on 127.0.0.1 that accepts and at once closes connections, counting them."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.05)
    accepted, stop = [], threading.Event()

    def loop():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:  # the 0.05 s poll
                continue
            accepted.append(conn.getpeername())
            conn.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield sock.getsockname()[1], accepted
    stop.set()
    thread.join(5)
    sock.close()


@pytest.mark.parametrize("scheme", ["file", "data", "ftp", "redirect-to-ftp"])
def test_only_http_addresses_are_fetched(scheme, isolated, server, listener, tmp_path, monkeypatch):
    """file://, data: and ftp:// mirrors are refused before any fetch; an http redirect to ftp is not followed."""
    project, _ = isolated
    port, accepted = listener
    body = b"weights from elsewhere"
    canonical = weights.CANONICAL["vgg19"]
    monkeypatch.setitem(weights.CANONICAL, "vgg19", weights.CanonicalFile("vgg19", canonical.filename, _md5(body)))
    mirror = tmp_path / "mirror"
    (mirror / "vgg19").mkdir(parents=True)
    (mirror / "vgg19" / canonical.filename).write_bytes(body)  # what file:// would fetch, md5 and all
    base = {"file": mirror.as_uri(), "data": "data:,weights", "ftp": f"ftp://127.0.0.1:{port}",
            "redirect-to-ftp": server.base + "/r"}[scheme]
    server.serve(f"/r/vgg19/{canonical.filename}", f"ftp://127.0.0.1:{port}/vgg19/{canonical.filename}",
                 "redirect")
    monkeypatch.setenv(weights.ENV_URL, base)
    with pytest.raises(UserError) as exc_info:
        weights.resolve("vgg19")
    message = str(exc_info.value)
    if scheme == "redirect-to-ftp":
        assert "could not download" in message and "ftp" in message
    else:
        assert "only http:// and https://" in message and weights.ENV_URL in message
        assert server.requests == []
    assert accepted == []  # nothing connected to the ftp port
    _assert_download_refused(exc_info, project, canonical.filename, existed=True)


def test_weights_dir_that_is_a_file(isolated, tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "download", _no_download)
    not_a_dir = _place(tmp_path)  # the common slip: the variable names the weight file itself
    monkeypatch.setenv(weights.ENV_DIR, str(not_a_dir))
    with pytest.raises(UserError) as exc_info:
        weights.resolve("vgg19")
    message = str(exc_info.value)
    assert f"${weights.ENV_DIR}={not_a_dir} is a file, not a directory" in message and "\n" not in message
    assert "--weights" in message


def test_download_below_a_file_says_so(server, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    body = b"x" * 100
    with pytest.raises(UserError) as exc_info:
        download.download(server.serve("/f.h5", body), blocker / "sub" / "f.h5", _md5(body))
    assert str(exc_info.value) == (f"cannot download into {blocker / 'sub'}: {blocker} is a file, "
                                   "not a directory")
    assert blocker.read_text() == "keep me" and server.requests == []


def test_failed_download_removes_the_directories_it_made(server, tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(UserError, match="404"):
        download.download(server.base + "/missing.h5", kept / "a" / "b" / "c" / "f.h5", "0" * 32)
    assert _listing(kept) == []


def test_redirect_loop_is_one_line(server, tmp_path):
    url = server.serve("/loop.h5", "/loop.h5", "redirect")
    with pytest.raises(UserError) as exc_info:
        download.download(url, tmp_path / "w" / "f.h5", "0" * 32)
    message = str(exc_info.value)
    assert "\n" not in message and "redirect loop" in message and url in message
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("limit", ["deadline", "min-rate"])
def test_trickle_gives_up(limit, server, tmp_path, monkeypatch, capsys):
    """One byte every 0.2 s: the run stops at the deadline, or once the rate over the window is too low."""
    body = os.urandom(200)  # 40 s at this pace: far beyond either limit
    url = server.serve("/slow.h5", body, "trickle")
    if limit == "deadline":
        monkeypatch.setenv(download.ENV_DEADLINE, "1.0")
        monkeypatch.setenv(download.ENV_MIN_RATE, "0")  # 0: no rate check
        expected, earliest = download.ENV_DEADLINE, 1.0
    else:
        monkeypatch.setattr(download, "RATE_WINDOW", 0.6)
        monkeypatch.setenv(download.ENV_MIN_RATE, "100")  # 5 B/s arrive
        expected, earliest = download.ENV_MIN_RATE, 0.6
    dest = tmp_path / "w" / "f.h5"
    start = time.monotonic()
    with pytest.raises(UserError) as exc_info:
        download.download(url, dest, _md5(body))
    elapsed = time.monotonic() - start
    assert earliest <= elapsed < earliest + 1.0
    message = str(exc_info.value)
    assert message.startswith(f"download of {url} gave up after") and expected in message
    _assert_download_refused(exc_info, dest.parent, dest.name)
    assert "downloading f.h5" in capsys.readouterr().err  # the progress bar was shown meanwhile


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "0"])
def test_bad_limit_values_are_refused(value, server, tmp_path, monkeypatch):
    monkeypatch.setenv(download.ENV_DEADLINE, value)
    with pytest.raises(UserError) as exc_info:
        download.download(server.serve("/f.h5", b"x"), tmp_path / "w" / "f.h5", _md5(b"x"))
    assert str(exc_info.value).startswith(f"${download.ENV_DEADLINE}={value}: expected a finite number > 0")
    assert server.requests == [] and not (tmp_path / "w").exists()


def _temp_files(directory):
    return [name for name in _listing(directory) if ".part" in name] if Path(directory).exists() else []


def test_sigterm_during_download_leaves_no_temp_file(server, tmp_path):
    """A real process killed by SIGTERM mid-download removes its temp file and the directory it made, then
    dies of the signal as it would have."""
    url = server.serve("/slow.h5", os.urandom(200), "trickle")
    dest = tmp_path / "w" / "f.h5"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    code = "import sys; from legacy_nst.vgg import download; download.download(sys.argv[1], sys.argv[2], '0' * 32)"
    child = subprocess.Popen([sys.executable, "-c", code, url, str(dest)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60  # importing TensorFlow takes a few seconds
        while not _temp_files(dest.parent) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        temps = _temp_files(dest.parent)
        assert len(temps) == 1 and f"{download.HOST_TAG}-{child.pid}." in temps[0]
        child.send_signal(signal.SIGTERM)
        assert child.wait(10) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()
    assert not dest.parent.exists()


class _Stop(Exception):
    pass


def test_sigterm_goes_on_to_the_previous_handler(server, tmp_path):
    """In-process: the handler that was there before (the CLI's turns SIGTERM into an exception) still
    gets the signal, after the temp file is gone; and it is put back afterwards."""
    def previous(signum, frame):
        raise _Stop

    url = server.serve("/slow.h5", os.urandom(200), "trickle")
    dest = tmp_path / "w" / "f.h5"
    old = signal.signal(signal.SIGTERM, previous)
    timer = threading.Timer(0.6, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        with pytest.raises(_Stop):
            download.download(url, dest, "0" * 32)
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, old)
    assert not dest.parent.exists()


def test_stale_temp_files_are_removed_at_the_next_download(server, tmp_path, monkeypatch):
    """Dead writer on this host, or untouched for longer than the deadline: removed. A live writer, another
    host's writer (its pid means nothing here) and other files: kept."""
    body = os.urandom(1000)
    url = server.serve("/f.h5", body)
    dest = tmp_path / "w" / "f.h5"
    dest.parent.mkdir()
    finished = subprocess.Popen(["true"])
    finished.wait()
    running = subprocess.Popen(["sleep", "60"])
    monkeypatch.setenv(download.ENV_DEADLINE, "100")
    try:
        def temp(host, pid, age, token="0" * 12):
            path = dest.parent / f".f.{host}-{pid}.{token}.part.h5"
            path.write_bytes(b"partial")
            os.utime(path, (time.time() - age, time.time() - age))
            return path.name

        dead = temp(download.HOST_TAG, finished.pid, 50)
        live = temp(download.HOST_TAG, running.pid, 50)
        elsewhere = temp("0123abcd" if download.HOST_TAG != "0123abcd" else "3210dcba", finished.pid, 50)
        abandoned = temp(download.HOST_TAG, running.pid, 150, token="1" * 12)  # live pid, maybe reused
        other_file = dest.parent / f".g.{download.HOST_TAG}-{finished.pid}.{'0' * 12}.part.h5"
        other_file.write_bytes(b"another file's download")
        (dest.parent / "notes.txt").write_text("mine")
        assert download.download(url, dest, _md5(body)) == dest
    finally:
        running.kill()
        running.wait()
    assert dead not in _listing(dest.parent) and abandoned not in _listing(dest.parent)
    assert _listing(dest.parent) == sorted([live, elsewhere, other_file.name, "notes.txt", "f.h5"])


# ---------------------------------------------------------------------------------------------------------
# reading


def _params_equal(a, b, layers):
    return all(np.array_equal(a[l][0], b[l][0]) and np.array_equal(a[l][1], b[l][1]) for l in layers)


@pytest.mark.parametrize("spelling", ["legacy", "keras2"])
def test_both_hdf5_spellings_read(spelling, tmp_path):
    params = synthetic_weights("vgg19", seed=7, layers=BLOCK1_3)
    path = tmp_path / f"{spelling}.h5"
    save_keras_h5(path, "vgg19", params, spelling=spelling)
    with h5py.File(path, "r") as f:  # the layout of the README: names are byte strings
        assert f.attrs["layer_names"].dtype.kind == "S"
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert names[:4] == ["input_1", "block1_conv1", "block1_conv2", "block1_pool"]
        assert len(f["block1_pool"].attrs["weight_names"]) == 0
        assert f["block1_conv1"].attrs["weight_names"].dtype.kind == "S"
        kernel_name = [n.decode() for n in f["block1_conv1"].attrs["weight_names"]][0]
        assert kernel_name == ("block1_conv1_W_1:0" if spelling == "legacy" else "block1_conv1/kernel:0")
        assert f["block1_conv1"][kernel_name].shape == (3, 3, 3, 64)
    loaded = weights.load_weights(path, "vgg19", ["block3_conv4"])
    assert list(loaded) == BLOCK1_3
    assert _params_equal(loaded, params, BLOCK1_3)
    assert all(k.dtype == np.float32 and b.dtype == np.float32 for k, b in loaded.values())


def test_only_layers_up_to_the_deepest_needed_are_read(vgg19_h5):
    loaded = weights.load_weights(vgg19_h5, "vgg19", ["block2_conv1", "block1_conv2"])
    assert list(loaded) == ["block1_conv1", "block1_conv2", "block2_conv1"]


def test_full_synthetic_files_match_keras_itself(vgg19_h5, vgg16_h5):
    """Keras' own loader reads the fixture files as it reads the canonical ones, to the same numbers."""
    keras = pytest.importorskip("keras")
    for network, path, model in (("vgg19", vgg19_h5, keras.applications.VGG19),
                                 ("vgg16", vgg16_h5, keras.applications.VGG16)):
        net = model(include_top=False, weights=None, input_shape=(32, 32, 3))
        net.load_weights(str(path))
        ours = weights.load_weights(path, network, [conv_layers(network)[-1]])
        assert list(ours) == conv_layers(network)
        for name, (kernel, bias) in ours.items():
            theirs = net.get_layer(name).get_weights()
            assert np.array_equal(theirs[0], kernel) and np.array_equal(theirs[1], bias), name


def test_reads_a_file_written_by_keras(tmp_path):
    keras = pytest.importorskip("keras")
    legacy_h5_format = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format")
    net = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "from_keras.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, net)
    loaded = weights.load_weights(path, "vgg16", ["block5_conv3"])
    for name, (kernel, bias) in loaded.items():
        theirs = net.get_layer(name).get_weights()
        assert np.array_equal(theirs[0], kernel) and np.array_equal(theirs[1], bias), name


def _save_npz(path, params):
    np.savez(path, **{f"{l}/{part}": v for l, (k, b) in params.items() for part, v in (("kernel", k), ("bias", b))})
    return path


def test_npz_bundle(tmp_path):
    params = synthetic_weights("vgg16", seed=2)
    path = _save_npz(tmp_path / "vgg16.npz", params)
    loaded = weights.load_weights(path, "vgg16", ["block5_conv3", "block4_conv2"])
    assert _params_equal(loaded, params, conv_layers("vgg16"))


def test_partial_npz_deep_enough_is_fine(tmp_path):
    params = synthetic_weights("vgg19", seed=2, layers=BLOCK1_3)
    path = _save_npz(tmp_path / "part.npz", params)
    loaded = weights.load_weights(path, "vgg19", PREVIEW_LAYERS)
    assert list(loaded) == conv_layers("vgg19")[: conv_layers("vgg19").index("block3_conv2") + 1]


def test_partial_npz_too_shallow_names_missing_and_deepest(tmp_path):
    layers = ["block1_conv1", "block1_conv2", "block2_conv1"]
    path = _save_npz(tmp_path / "part.npz", synthetic_weights("vgg16", seed=2, layers=layers))
    with pytest.raises(UserError) as exc_info:
        weights.load_weights(path, "vgg16", ["block3_conv1"])
    message = str(exc_info.value)
    assert "block2_conv2" in message  # the first layer the run needs that the file lacks
    assert "deepest layer in the file: block2_conv1" in message


def test_wrong_network_is_refused_both_ways(vgg19_h5, vgg16_h5):
    with pytest.raises(UserError, match=r"VGG16 weights .* uses VGG19.*--network vgg16"):
        weights.load_weights(vgg16_h5, "vgg19", ["block1_conv1"])
    with pytest.raises(UserError, match=r"VGG19 weights .* uses VGG16.*--network vgg19"):
        weights.load_weights(vgg19_h5, "vgg16", ["block1_conv1"])


def test_wrong_network_npz_is_refused(tmp_path):
    path = _save_npz(tmp_path / "v16.npz", synthetic_weights("vgg16", seed=2))
    with pytest.raises(UserError, match="VGG16"):
        weights.load_weights(path, "vgg19", ["block3_conv1"])


@pytest.mark.parametrize("kind", ["h5", "npz"])
def test_wrong_shapes_are_refused(kind, tmp_path):
    params = synthetic_weights("vgg19", seed=2, layers=BLOCK1_3)
    kernel, bias = params["block2_conv1"]
    params["block2_conv1"] = (np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), bias)  # OIHW, not HWIO
    path = tmp_path / f"w.{kind}"
    if kind == "h5":
        save_keras_h5(path, "vgg19", params)
    else:
        _save_npz(path, params)
    with pytest.raises(UserError) as exc_info:
        weights.load_weights(path, "vgg19", ["block3_conv1"])
    message = str(exc_info.value)
    assert "block2_conv1" in message and "(128, 64, 3, 3)" in message and "(3, 3, 64, 128)" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused(bad, tmp_path):
    params = synthetic_weights("vgg19", seed=2, layers=BLOCK1_3)
    params["block1_conv2"][0][1, 1, 5, 7] = bad
    path = tmp_path / "nan.h5"
    save_keras_h5(path, "vgg19", params)
    with pytest.raises(UserError, match="block1_conv2 contains NaN or infinite"):
        weights.load_weights(path, "vgg19", ["block2_conv1"])
    # a file is judged only on the layers a run reads
    assert list(weights.load_weights(path, "vgg19", ["block1_conv1"])) == ["block1_conv1"]


def test_truncated_h5_is_refused(vgg19_h5, tmp_path):
    data = vgg19_h5.read_bytes()
    path = tmp_path / weights.CANONICAL["vgg19"].filename
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        weights.load_weights(path, "vgg19", ["block1_conv1"])


def test_truncated_npz_is_refused(tmp_path):
    data = _save_npz(tmp_path / "full.npz", synthetic_weights("vgg19", seed=2, layers=BLOCK1_3)).read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        weights.load_weights(path, "vgg19", ["block1_conv1"])


def test_hdf5_that_is_not_a_weight_file_is_refused(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 3)))
    with pytest.raises(UserError, match="not a Keras HDF5 weight file"):
        weights.load_weights(path, "vgg19", ["block1_conv1"])


def test_keras_file_of_another_model_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"dense_1"]
        group = f.create_group("dense_1")
        group.create_dataset("dense_1_W_1:0", data=np.zeros((4, 2), np.float32))
        group.create_dataset("dense_1_b_1:0", data=np.zeros((2,), np.float32))
        group.attrs["weight_names"] = [b"dense_1_W_1:0", b"dense_1_b_1:0"]
    with pytest.raises(UserError, match="no VGG conv layers"):
        weights.load_weights(path, "vgg19", ["block1_conv1"])


@pytest.mark.parametrize("name", ["notes.txt", "looks_like.h5", "looks_like.npz"])
def test_text_file_is_refused(name, tmp_path):
    path = tmp_path / name
    path.write_text("these are not the weights you are looking for\n" * 20)
    with pytest.raises(UserError) as exc_info:
        weights.load_weights(path, "vgg19", ["block1_conv1"])
    assert str(path) in str(exc_info.value) and "\n" not in str(exc_info.value)


def test_real_partial_vgg19(real_weights):
    assert download.md5sum(real_weights) == REAL_MD5
    loaded = weights.load_weights(real_weights, "vgg19", ["block3_conv4"])
    shapes = conv_shapes("vgg19")
    assert list(loaded) == BLOCK1_3
    for name, (kernel, bias) in loaded.items():
        assert (kernel.shape, bias.shape) == shapes[name]
        assert kernel.dtype == np.float32 and np.isfinite(kernel).all() and kernel.std() > 1e-3
    with np.load(real_weights) as raw:
        assert np.array_equal(raw["block1_conv1/kernel"], loaded["block1_conv1"][0])
    # the preview recipe's layers are all there
    assert list(weights.load_weights(real_weights, "vgg19", PREVIEW_LAYERS))[-1] == "block3_conv2"
    # block4 and block5 are absent: named clearly
    with pytest.raises(UserError) as exc_info:
        weights.load_weights(real_weights, "vgg19", ["block4_conv2"])
    assert "block4_conv1" in str(exc_info.value) and "block3_conv4" in str(exc_info.value)
    # and it is a VGG19 file, whatever the run asks of it
    with pytest.raises(UserError, match="VGG19"):
        weights.load_weights(real_weights, "vgg16", ["block1_conv1"])


@pytest.mark.parametrize("name, content, what", [
    ("tubingen.jpg", "JPEG", "it is a JPEG image"),
    ("weights.h5", "PNG", "it is a PNG image"),  # the extension does not decide, the first bytes do
    ("notes.npz", b"plain text, not weights\n", "its first bytes are neither HDF5 nor zip; if it is a download, "
                                                "it is truncated or corrupt: download it again"),
    ("empty.h5", b"", "it is empty; if it is a download, it is truncated or corrupt: download it again"),
])
def test_a_file_that_is_not_weights_says_so(name, content, what, tmp_path):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, format=content)
    with pytest.raises(UserError) as exc_info:
        weights.load_weights(path, "vgg19", ["block1_conv1"])
    assert str(exc_info.value) == f"{path} is not a VGG weight file (.h5 in Keras layout or .npz): {what}"


def test_npz_named_h5_is_read_as_npz(tmp_path):
    params = synthetic_weights("vgg19", seed=4, layers=BLOCK1_3)
    path = tmp_path / "bundle.npz"
    _save_npz(path, params)
    renamed = path.rename(tmp_path / "bundle.h5")
    assert _params_equal(weights.load_weights(renamed, "vgg19", ["block3_conv4"]), params, BLOCK1_3)


def test_too_shallow_names_the_layer_asked_for(real_weights):
    """Unordered request: the deepest asked-for layer is named with the first layer the file lacks."""
    with pytest.raises(UserError) as exc_info:
        weights.load_weights(real_weights, "vgg19", ["block4_conv2", "block1_conv1"])
    assert str(exc_info.value) == (f"{real_weights}: has no weights for block4_conv1, which block4_conv2 needs "
                                   "(deepest layer in the file: block3_conv4); choose shallower layers or use "
                                   "the full weight file")
