"""Download a weight file: within limits, checked, and leaving nothing behind whatever stops it.

A download goes to a temporary file, is checked against the canonical md5 and only then renamed, so a file
under the final name is always whole. $LEGACY_NST_WEIGHTS_URL replaces the download base address (a mirror;
http or https only). An environment variable that is empty (or only blanks) counts as unset.

Downloads give up: past $LEGACY_NST_DOWNLOAD_DEADLINE seconds in all, or when fewer than
$LEGACY_NST_DOWNLOAD_MIN_RATE bytes/s arrived over the last RATE_WINDOW seconds (0 turns that check off);
one read waits at most min(RATE_WINDOW, deadline) seconds, which bounds how far a silent server overruns.
Nothing is left behind: not the temporary file (also on SIGTERM), not the directories the download made.
A temporary file left by a download killed outright (kill -9, power loss) is named
`.{stem}.{host}-{pid}.{token}.part.h5`; the next download of the same file removes it when it is provably
stale: written on this host by a pid that no longer runs, or not modified for longer than the deadline (its
download has given up by then, unless it was given a longer deadline). Otherwise it is kept: another host's
pid means nothing here (a shared weights directory), and a live pid may be a reused one, so only age decides.
"""
import contextlib
import hashlib
import http.client
import math
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from ..atomic import atomic_path, temp_stem
from ..errors import UserError
from ..liveness import HOST_TAG, may_run

ENV_DIR = "LEGACY_NST_WEIGHTS_DIR"  # where weight files are looked for first and downloaded to (weights.resolve)
ENV_URL = "LEGACY_NST_WEIGHTS_URL"
ENV_DEADLINE = "LEGACY_NST_DOWNLOAD_DEADLINE"
ENV_MIN_RATE = "LEGACY_NST_DOWNLOAD_MIN_RATE"

# Sized for the 80 MB VGG19 file: 50 kB/s (0.4 Mbit/s) sustained delivers it in 1600 s, inside the 30-minute
# deadline, so the rate check stops within a minute a connection that could not finish in time anyway.
DEFAULT_DEADLINE = 1800.0
DEFAULT_MIN_RATE = 50_000.0
RATE_WINDOW = 60.0  # seconds the rate is measured over; also the socket timeout, so silence counts as 0 B/s
CHUNK = 1 << 16  # read1 returns as soon as any bytes arrived (up to this many), so a trickle is measured


def env_value(name):
    """The variable's value, or None when it is unset, empty or only blanks."""
    value = os.environ.get(name, "")
    return value if value.strip() else None


def md5sum(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Limits:
    deadline: float  # seconds for the whole fetch
    min_rate: float  # bytes/s over the last `window` seconds; 0: no rate check
    window: float

    @classmethod
    def from_env(cls):
        return cls(_env_number(ENV_DEADLINE, DEFAULT_DEADLINE, "seconds", zero_ok=False),
                   _env_number(ENV_MIN_RATE, DEFAULT_MIN_RATE, "bytes/s", zero_ok=True), RATE_WINDOW)


def _env_number(name, default, unit, zero_ok):
    text = env_value(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        kind = "a finite number >= 0" if zero_ok else "a finite number > 0"
        raise UserError(f"${name}={text}: expected {kind} ({unit}); unset it for the default {default:g}")
    return value


def download(url, dest, md5):
    """Fetch `url` (http or https only) to `dest` with a progress bar, within Limits.from_env(); nothing lands
    under `dest` unless the md5 matches, and a failure leaves neither a temporary file nor new directories."""
    dest = Path(dest)
    hint = (f"put {dest.name} (md5 {md5}) in {dest.parent} or in ${ENV_DIR}, "
            f"or pass --weights PATH")
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise UserError(f"refusing to download {url}: only http:// and https:// addresses are fetched "
                        f"(check ${ENV_URL}); {hint}")
    limits = Limits.from_env()
    with _sigterm_cleans_up(url):
        created = []
        try:
            _make_dirs(dest.parent, created)
            remove_stale_temps(dest, limits.deadline)
            with atomic_path(dest, tag=f"{HOST_TAG}-{os.getpid()}") as tmp:
                received, total = _fetch(url, tmp, dest.name, limits, hint)
                if total is not None and received != total:  # urllib does not raise on a short body
                    raise UserError(f"download of {url} incomplete: got {received} of {total} bytes "
                                    f"(connection dropped); nothing saved; {hint}")
                got = md5sum(tmp)
                if got != md5:
                    raise UserError(f"downloaded {url} has md5 {got}, expected {md5}: refused; {hint}")
        except BaseException as exc:  # SIGTERM (_Terminated) and Ctrl-C included
            _remove_dirs(created)
            # HTTPException: IncompleteRead of a chunked body, a garbled status line; ValueError: a bad URL
            if isinstance(exc, (urllib.error.URLError, OSError, http.client.HTTPException, ValueError)):
                raise UserError(f"could not download {url} ({_reason(exc)}); {hint}") from None
            raise
    return dest


def _reason(exc):
    if isinstance(exc, urllib.error.HTTPError):
        if str(exc.reason).startswith(urllib.request.HTTPRedirectHandler.inf_msg):
            return f"redirect loop: HTTP {exc.code} to addresses already visited or too many redirects"
        reason = f"HTTP {exc.code} {exc.reason}"
    else:
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
    return " ".join(str(reason).split())  # the message is one line whatever the server or OS said


def _opener():
    """urllib without its file:, ftp: and data: handlers, so no redirect can lead off http(s) either."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(),
                    urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPRedirectHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _fetch(url, tmp, name, limits, hint):
    """Stream `url` into `tmp`, showing progress as `name`; returns (bytes received, Content-Length or
    None). Gives up (UserError) past the deadline or below the minimum rate."""
    start = time.monotonic()
    samples = deque([(start, 0)])  # (time, bytes so far), thinned to ~64 per window
    received = 0

    def give_up(why):
        return UserError(f"download of {url} gave up after {time.monotonic() - start:.1f} s with "
                         f"{received} bytes: {why}; nothing saved; {hint}")

    def check(now):
        if now - start > limits.deadline:
            raise give_up(f"past the {limits.deadline:g} s deadline (${ENV_DEADLINE})")
        if now - samples[-1][0] >= limits.window / 64:
            samples.append((now, received))
        while len(samples) > 1 and samples[1][0] <= now - limits.window:
            samples.popleft()
        then, before = samples[0]
        if now - then >= limits.window and (received - before) / (now - then) < limits.min_rate:
            raise give_up(f"{(received - before) / (now - then):.0f} B/s over the last {now - then:.1f} s, "
                          f"below the minimum {limits.min_rate:g} B/s (${ENV_MIN_RATE})")

    timeout = min(limits.window, limits.deadline)
    with _opener().open(url, timeout=timeout) as response, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {name}") as bar:
            while True:
                try:
                    block = response.read1(CHUNK)
                except TimeoutError:
                    check(time.monotonic())
                    raise give_up(f"no data for {timeout:g} s") from None
                if not block:
                    return received, total
                out.write(block)
                received += len(block)
                bar.update(len(block))
                check(time.monotonic())


class _Terminated(BaseException):
    """SIGTERM during a download: unwinds it so the temporary file and new directories are removed."""


@contextlib.contextmanager
def _sigterm_cleans_up(url):
    """Within the block SIGTERM raises _Terminated; after the cleanup the signal goes on to the handler that
    was there before (the default one ends the process with SIGTERM, as it would have). Only the main
    thread can set handlers, and an ignored SIGTERM stays ignored; then the block runs unchanged."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
        yield
        return

    def on_sigterm(signum, frame):
        raise _Terminated

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signal.SIGTERM)  # the previous handler runs (or the process ends) right here
        raise UserError(f"download of {url} stopped by SIGTERM; nothing saved") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _make_dirs(directory, created):
    """mkdir -p that appends each directory it makes to `created` (outermost first), and says so plainly
    when a path component exists but is not a directory."""
    missing = []
    for path in (directory, *directory.parents):
        if path.is_dir():
            break
        if os.path.lexists(path):
            raise UserError(f"cannot download into {directory}: {path} is a file, not a directory")
        missing.append(path)
    for path in reversed(missing):
        path.mkdir()
        created.append(path)


def _remove_dirs(created):
    for path in reversed(created):
        with contextlib.suppress(OSError):  # not empty: something else put a file there meanwhile
            path.rmdir()


def remove_stale_temps(dest, deadline):
    """Remove temporary files of earlier downloads of `dest` that no live download can still be writing:
    from this host by a pid that is gone, or untouched for longer than `deadline` seconds. Returns them."""
    dest = Path(dest)
    pattern = re.compile(re.escape(f".{temp_stem(dest)}.") + r"(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\."
                         r"[0-9a-f]{12}\.part" + re.escape(dest.suffix))
    removed = []
    for path in dest.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match is None:
            continue
        with contextlib.suppress(FileNotFoundError):  # another download removed it first
            dead = not may_run(int(match["pid"]), host=match["host"])
            if dead or time.time() - path.stat().st_mtime > deadline:
                path.unlink()
                removed.append(path)
    return removed
