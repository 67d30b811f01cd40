"""report.write_report on a built directory, read back with the stdlib HTML parser."""
import json
import os
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from legacy_nst.errors import UserError
from legacy_nst.report import read_losses, write_report

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
    assert len(sources) == 8  # sheet, comparison, EVIL's result; tubingen's result, grid, loss plot, 2 iterations
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
    # final and lowest of each term; tv is empty in every row so it is no term; total comes first
    losses = [r for r in rows if r[0] in ("total", "content", "style", "tv", "denoise")]
    assert losses[:3] == [("total", "1", "1"), ("content", "0.25", "0.25"), ("style", "0.75", "0.75")]
    assert ("denoise", "2", "2") in losses and not [r for r in losses if r[0] == "tv"]
    text = "".join(page.text)
    assert "40 evaluations · iteration 4 · size 64 → 128 px · 3.5 s" in text


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
    assert np.all(steps > 0) and np.allclose(steps, steps[0], atol=0.15)  # points rounded to 0.1
    xs = [x for x, _ in first + second]
    assert np.allclose(np.diff(xs), xs[1] - xs[0], atol=0.15)


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
