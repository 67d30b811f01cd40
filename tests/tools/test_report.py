"""report.write_report on a built directory, read back with the stdlib HTML parser."""
import json
import os
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from legacy_nst.errors import UserError
from legacy_nst.tools.report import read_losses, write_report

EVIL = "a<script>b&c"  # a run whose name must show as text, never as markup
LOG = ("size,iteration,evaluations,total,content,style,tv,seconds\n"
       "64,1,10,1000,400,600,,0.5\n64,2,20,100,40,60,,1.0\n128,3,30,10,4,6,,2.25\n128,4,40,1,0.25,0.75,,3.5\n")


class Page(HTMLParser):
    """Start tags with their attributes, all text, and every table as rows of cell texts."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.text, self.tables, self._cell = [], [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell += data

    def attrs(self, tag, name):
        return [a[name] for t, a in self.tags if t == tag and name in a]

    def rows(self):
        return [tuple(row) for table in self.tables for row in table]


def png(path, size=(6, 4), colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), colour, np.uint8)).save(path)


@pytest.fixture
def tree(tmp_path):
    runs = tmp_path / "runs"
    for name in ("tubingen.png", "tubingen_grid.png", "tubingen_losses.png", "tubingen_at_evaluation_2.png",
                 "tubingen_at_evaluation_10.png", f"{EVIL}.png"):
        png(runs / name)
    (runs / "tubingen_losses.csv").write_text(LOG)
    (runs / "tubingen.json").write_text(json.dumps({"recipe": "preview", "style_weight": 0.125,
                                                    "style_layers": ["block1_conv1"], "descent": {"eps": 1e-8}}))
    (runs / f"{EVIL}_losses.csv").write_text("size,iteration,evaluations,total,denoise,seconds\n32,1,1,5,2,0.1\n")
    png(tmp_path / "fig2" / "sheet.png", (30, 20))
    png(tmp_path / "fig2" / "cells" / "r0c0.png")
    (tmp_path / "fig2" / "cells.csv").write_text("row,col,image,total\nconv1_1,1e-3,cells/r0c0.png,123.5\n"
                                                  "conv2_1,1e-4,,\n")
    png(tmp_path / "cmp" / "comparison.png", (20, 10))
    (tmp_path / "cmp" / "metrics.json").write_text(json.dumps({"ssim": 0.8123, "gram_distance": {"conv1_1": 4.5}}))
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep_losses.csv").write_text(LOG)  # 3 levels down: found
    (tmp_path / "a" / "b" / "c" / "d").mkdir()
    (tmp_path / "a" / "b" / "c" / "d" / "deeper_losses.csv").write_text(LOG)  # 4 levels down: not
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "secret_losses.csv").write_text(LOG)
    return tmp_path


def report(directory):
    said = []
    path = write_report(directory, say=said.append)
    assert path == os.path.join(str(directory), "index.html") and len(said) == 1
    with open(path, encoding="utf-8") as f:
        html = f.read()
    return html, Page(html), said[0]


def test_every_link_is_relative_and_exists_and_nothing_external(tree):
    html, page, said = report(tree)
    assert said.endswith("3 runs, 1 figure, 1 comparison")
    sources = page.attrs("img", "src")
    links = page.attrs("a", "href")
    ids = set(page.attrs("article", "id")) | set(page.attrs("section", "id"))
    # the gallery: the sheet, EVIL's and tubingen's results, the comparison (deep has no image); then the cards:
    # the sheet, the comparison, EVIL's result; tubingen's result, grid, loss plot, 2 iterations
    assert len(sources) == 4 + 8
    for url in sources + links:
        if url.startswith("#"):
            assert url[1:] in ids, url
            continue
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("/"), url
        assert (tree / unquote(url)).is_file(), url
    assert "runs/tubingen.png" in sources and "fig2/cells/r0c0.png" in links  # a CSV value naming a file
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe", "object")]
    iterations = [s for s in sources if "at_evaluation" in s]
    assert iterations == ["runs/tubingen_at_evaluation_2.png", "runs/tubingen_at_evaluation_10.png"]  # by number


def test_tables_hold_the_values(tree):
    _, page, _ = report(tree)
    rows = page.rows()
    assert ("style_weight", "0.125") in rows and ("recipe", "preview") in rows
    assert ("descent.eps", "1e-08") in rows and ("style_layers", '["block1_conv1"]') in rows
    assert ("ssim", "0.8123") in rows and ("gram_distance.conv1_1", "4.5") in rows
    assert ("conv1_1", "1e-3", "cells/r0c0.png", "123.5") in rows and ("conv2_1", "1e-4", "", "") in rows
    # first, final and at the lowest total of each term; tv is empty in every row so it is no term; total first
    losses = [r for r in rows if r[0] in ("total", "content", "style", "tv", "denoise")]
    assert losses[:3] == [("total", "1000", "1", "1"), ("content", "400", "0.25", "0.25"),
                          ("style", "600", "0.75", "0.75")]
    assert ("denoise", "2", "2", "2") in losses and not [r for r in losses if r[0] == "tv"]
    text = "".join(page.text)
    assert "40 evaluations (4 iterations) · size 64 → 128 px · 3.5 s" in text
    assert "at the lowest total (evaluation 40)" in text


def test_text_is_escaped(tree):
    html, page, _ = report(tree)
    assert "<script" not in html
    assert EVIL in page.text  # the run's title, unescaped back by the parser: the name as the user wrote it
    assert f"{EVIL}.png" in [unquote(s).split("/")[-1] for s in page.attrs("img", "src")]


def test_sparkline_is_log_scale_and_breaks_between_scales(tree):
    html, page, _ = report(tree)
    lines = [[tuple(map(float, p.split(","))) for p in pts.split()] for pts in page.attrs("polyline", "points")]
    assert len(lines) == 4  # deep's and tubingen's two scales each; EVIL's one row makes no line
    first, second = lines[0], lines[1]
    assert len(first) == 2 and len(second) == 2  # 64 px rows, then 128 px rows: not joined
    ys = [y for _, y in first + second]
    steps = np.diff(ys)  # totals 1000, 100, 10, 1: equal steps down the y axis on a log scale
    # measured 0.10: the rounding
    assert np.all(steps > 0) and np.allclose(steps, steps[0], atol=0.15)  # points rounded to 0.1
    xs = [x for x, _ in first + second]
    assert np.allclose(np.diff(xs), xs[1] - xs[0], atol=0.15)  # measured 0.10


def test_depth_and_hidden_folders_bound_the_search(tree):
    html, page, _ = report(tree)
    assert len(page.attrs("article", "id")) == 5
    assert "deep" in page.text and "deeper" not in page.text and "secret" not in page.text


def test_read_losses(tmp_path):
    path = tmp_path / "x_losses.csv"
    path.write_text("size,iteration,evaluations,style,total,tv,denoise,seconds\n8,1,1,2,3,,bad,0.1\n8,2,2,1,nan,,4,0.2\n")
    terms, rows = read_losses(path)
    assert terms == ["total", "style", "denoise"]  # total first wherever its column is; tv is empty
    assert rows[0]["style"] == 2 and np.isnan(rows[0]["denoise"]) and np.isnan(rows[1]["total"])


def test_unreadable_item_is_reported_in_place(tree):
    (tree / "runs" / "tubingen.json").write_text("{not json")
    (tree / "cmp" / "metrics.json").write_bytes(b"\xff\xfe\x00")
    html, page, said = report(tree)
    errors = "".join(page.text).split("could not read ")[1:]
    assert len(errors) == 2 and errors[0].startswith("cmp/metrics.json") and errors[1].startswith("runs/tubingen.json")
    assert said.endswith("3 runs, 1 figure, 1 comparison")


def test_empty_directory_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    html, page, said = report(tmp_path)
    assert "Nothing to show here" in "".join(page.text) and "nothing to show" in said
    assert not page.attrs("img", "src")
    assert sorted(os.listdir(tmp_path)) == ["index.html", "notes.txt"]  # no temporary file left behind


def test_bad_directory(tmp_path):
    with pytest.raises(UserError, match="no such directory"):
        write_report(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        write_report(tmp_path / "file")
    (tmp_path / "index.html").mkdir()  # writing the page fails (root ignores permission bits, this does not)
    with pytest.raises(UserError, match="index.html: cannot be written"):
        write_report(tmp_path, say=lambda line: None)


def test_nothing_outside_the_folder_is_read(tree, tmp_path_factory):
    """Issue 20.9: a symlinked RUN.json or RUN_losses.csv pointing elsewhere was read into the page."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.json").write_text(json.dumps({"password": "hunter2"}))
    (outside / "secret_losses.csv").write_text("size,iteration,evaluations,total,seconds\n8,0,1,31337,0.1\n")
    (tree / "runs" / "tubingen.json").unlink()
    (tree / "runs" / "tubingen.json").symlink_to(outside / "secret.json")
    (tree / "runs" / "leak_losses.csv").symlink_to(outside / "secret_losses.csv")
    html, page, _ = report(tree)
    assert "hunter2" not in html and "31337" not in html and "password" not in html
    text = "".join(page.text)
    assert "skipped runs/tubingen.json: a link to a file outside this folder: not read" in text
    assert "skipped runs/leak_losses.csv: a link to a file outside this folder" in text


def test_linked_folders_are_not_entered_and_say_so(tree, tmp_path_factory):
    """Issue 20.9: a symlinked folder leaving DIR was skipped without a word (and one inside DIR, too)."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret_losses.csv").write_text("size,iteration,evaluations,total,seconds\n8,0,1,31337,0.1\n")
    (tree / "elsewhere").symlink_to(outside, target_is_directory=True)
    (tree / "again").symlink_to(tree / "runs", target_is_directory=True)
    html, page, said = report(tree)
    assert "31337" not in html and "secret" not in html
    text = "".join(page.text)
    assert "skipped elsewhere/: a link to a folder outside this folder: not read" in text
    assert "skipped again/: a link to a folder in this folder: shown where it is" in text
    assert said.endswith("3 runs, 1 figure, 1 comparison; skipped 2 linked folders (see the page)")


def test_pipes_deep_json_and_odd_names_never_stop_the_page(tree):
    """Issues 20.10 and 20.11: a FIFO named *_losses.csv blocked forever; a RUN.json nested 3000 deep and a
    file name with the bytes \\xff\\xfe gave no page at all."""
    import signal

    os.mkfifo(tree / "runs" / "pipe_losses.csv")
    (tree / "runs" / "tubingen.json").write_text("[" * 3000 + "]" * 3000)
    odd = os.fsdecode(b"odd\xff\xfe")
    (tree / "runs" / f"{odd}_losses.csv").write_text(LOG)
    png(tree / "runs" / f"{odd}.png")
    signal.alarm(60)  # a blocking read fails the test instead of hanging the suite
    try:
        html, page, said = report(tree)
    finally:
        signal.alarm(0)
    text = "".join(page.text)
    assert "skipped runs/pipe_losses.csv: not a regular file (a pipe, socket or device): not read" in text
    assert "could not read runs/tubingen.json: nested too deeply to read" in text
    assert "odd\\xff\\xfe" in text and said.endswith("5 runs, 1 figure, 1 comparison")
    assert "runs/odd%FF%FE.png" in page.attrs("img", "src")


def test_a_page_report_did_not_write_is_kept_and_depth_must_be_positive(tree, capsys):
    """Issues 20.3 and 20.11."""
    from support import run_main

    hand = tree / "index.html"
    hand.write_text("<html>my own notes</html>")
    code, _, err = run_main(["report", tree], capsys)
    assert code == 2 and "not a page this report wrote; pass --overwrite" in err and len(err.splitlines()) == 1
    assert hand.read_text() == "<html>my own notes</html>"
    assert run_main(["report", tree, "--overwrite"], capsys)[0] == 0 and "my own notes" not in hand.read_text()
    assert run_main(["report", tree], capsys)[0] == 0  # its own page is replaced without the flag
    code, _, err = run_main(["report", tree, "--depth", "-5"], capsys)
    assert code == 2 and "--depth -5: must be 0" in err


def test_lbfgs_runs_read_evaluations_and_the_lowest_total_row(tmp_path):
    """Issue 24.4: every L-BFGS run read "iteration 0"; "lowest content_weighted" 0 came from evaluation 1."""
    (tmp_path / "r_losses.csv").write_text(
        "size,iteration,evaluations,total,content_weighted,style_weighted,seconds\n"
        "32,0,1,100,0,100,0.1\n32,0,2,50,10,40,0.2\n32,0,3,60,15,45,0.3\n")
    html, page, _ = report(tmp_path)
    text = "".join(page.text)
    assert "3 evaluations · size 32 px" in text and "iteration" not in text
    assert ("content_weighted", "0", "15", "10") in page.rows()  # first, final, at the lowest total
    assert "at the lowest total (evaluation 2)" in text


def test_sweeps_are_a_grid_over_their_keys_in_the_gallery(tmp_path):
    for weight in ("1e-3", "10.0"):  # a value with a dash stays one value
        for seed in ("1", "2"):
            name = f"sweep-style_weight={weight}-seed={seed}"
            (tmp_path / name / f"{name}_losses.csv").parent.mkdir()
            (tmp_path / name / f"{name}_losses.csv").write_text(LOG)
            png(tmp_path / name / f"{name}.png")
    _, page, _ = report(tmp_path)
    grid = [t for t in page.tables if t and t[0][0] == "style_weight \\ seed"]
    assert len(grid) == 1 and grid[0][0] == ["style_weight \\ seed", "1", "2"]
    assert [row[0] for row in grid[0][1:]] == ["1e-3", "10.0"]


def test_a_sweep_over_one_key_is_one_row(tmp_path):
    """It was one column: three thumbnails down the left edge of an empty page width."""
    for weight in ("0.01", "0.0001", "0.001"):
        name = f"sweep-style_weight={weight}"
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}_losses.csv").write_text(LOG)
        png(tmp_path / name / f"{name}.png")
    _, page, _ = report(tmp_path)
    grid, = [t for t in page.tables if t and t[0][0] == "style_weight"]
    assert grid[0] == ["style_weight", "0.0001", "0.001", "0.01"] and len(grid) == 2


def chromium_screenshot(page, path, width, height):
    """Headless Chromium's screenshot of `page` in a width × height window (apt-get install chromium)."""
    import shutil
    import subprocess
    import tempfile

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("no chromium on PATH: the report's screenshot test needs it (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={path}",
                               f"--window-size={width},{height}", f"file://{page}"],
                              capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and os.path.isfile(path), done.stderr[-2000:]
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


RUN_COLOURS = [(230, 40, 40), (40, 180, 60), (40, 80, 230), (230, 190, 30), (170, 40, 200), (30, 200, 210)]


def many_runs(directory, count=27):
    """`count` runs as a batch leaves them (a 2 × 2 sweep among them), each result one saturated colour, with
    settings, a loss plot and snapshots, and a figure."""
    settings = {"recipe": "preview", "algorithm": {f"field_{i}": i for i in range(40)}}
    names = [f"sweep-style_weight={w}-seed={s}" for w in ("0.1", "10.0") for s in ("1", "2")]
    names += [f"job-{i}" for i in range(count - len(names))]
    for i, name in enumerate(names):
        folder = directory / name
        png(folder / f"{name}.png", (96, 72), RUN_COLOURS[i % len(RUN_COLOURS)])
        png(folder / f"{name}_losses.png", (800, 500), (250, 250, 250))
        for n in (10, 20, 30):
            png(folder / f"{name}_at_evaluation_{n}.png", (96, 72), (120, 120, 120))
        (folder / f"{name}_losses.csv").write_text(LOG)
        (folder / f"{name}.json").write_text(json.dumps(settings))
    png(directory / "fig" / "sheet.png", (900, 400), (250, 250, 250))
    (directory / "fig" / "cells.csv").write_text("row,column,cell,status\n" + "r,c,x,done\n" * 20)


def test_the_page_scans_in_headless_chromium(tmp_path):
    """Issue 24.4: 27 runs made a page over 30 000 px tall with no gallery. Now the gallery (the results'
    colours) is in the first screen at a desktop and a phone width, and the whole page is bounded."""
    many_runs(tmp_path / "out")
    page = write_report(tmp_path / "out", say=lambda line: None)
    background = np.array([0xf5, 0xf6, 0xf8])
    for width, height, colours in ((1280, 800, len(RUN_COLOURS)), (390, 844, 4)):
        first = chromium_screenshot(page, tmp_path / f"first_{width}.png", width, height)
        found = [np.all(np.abs(first - colour) < 6, axis=-1).sum() for colour in RUN_COLOURS]
        # the gallery's thumbnails in the first screen: all six colours on a desktop, four on a phone
        assert sum(n > 500 for n in found) >= colours, (width, found)
    tall = chromium_screenshot(page, tmp_path / "whole.png", 1280, 12000)
    rows = np.nonzero(np.any(np.abs(tall - background).max(axis=-1) > 3, axis=1))[0]
    # measured 8 667 px (Chromium 1280 px wide): about 270 px a run card, the gallery and the figure above
    assert rows[-1] < 10000, rows[-1]
