"""One static HTML page (DIR/index.html) showing what a directory of runs, figures and comparisons holds.

No server, no JavaScript, nothing fetched: the CSS is inline, the loss sparklines are inline SVG drawn here,
images are linked by paths relative to DIR. What is found, at most MAX_DEPTH folders below DIR:
  run         STEM_losses.csv, with STEM.<image ext> (or STEM.partial.<ext>), STEM.json (settings),
              STEM_losses.png, STEM_grid.png, STEM_scaleN.<ext>, STEM_at_evaluation_N.<ext> when present;
  figure      a folder with sheet.png and cells.csv;
  comparison  a folder with comparison.png and metrics.json.
A file that cannot be read is reported on its item, in place; it never stops the page.
"""
import csv
import dataclasses
import datetime
import html
import json
import math
import os
import re
from urllib.parse import quote

from PIL import Image

from .atomic import write_text
from .errors import UserError

MAX_DEPTH = 3
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
NOT_TERMS = ("size", "iteration", "evaluations", "seconds")
LOSSES_SUFFIX = "_losses.csv"
PAGE = "index.html"


@dataclasses.dataclass
class Found:
    runs: list = dataclasses.field(default_factory=list)  # (folder, stem)
    figures: list = dataclasses.field(default_factory=list)  # folders
    comparisons: list = dataclasses.field(default_factory=list)  # folders

    def __bool__(self):
        return bool(self.runs or self.figures or self.comparisons)


def discover(directory, max_depth=MAX_DEPTH):
    """Every run, figure and comparison folder within max_depth levels below directory, in path order."""
    found = Found()
    root_depth = os.path.abspath(directory).rstrip(os.sep).count(os.sep)
    for folder, subfolders, files in os.walk(directory):
        depth = os.path.abspath(folder).rstrip(os.sep).count(os.sep) - root_depth
        # hidden names: temporary files being written (atomic.py's ".NAME.xxxx.part.EXT") and tool folders
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")) if depth < max_depth else []
        names = {f for f in files if not f.startswith(".")}
        if {"sheet.png", "cells.csv"} <= names:
            found.figures.append(folder)
        if {"comparison.png", "metrics.json"} <= names:
            found.comparisons.append(folder)
        found.runs += [(folder, f[: -len(LOSSES_SUFFIX)]) for f in sorted(names)
                       if f.endswith(LOSSES_SUFFIX) and len(f) > len(LOSSES_SUFFIX)]
    return found


def write_report(directory, max_depth=MAX_DEPTH, say=print):
    """Write DIR/index.html (atomically) for everything discover() finds; say() one line of what it holds."""
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        raise UserError(f"{directory}: no such directory; give the folder that holds the runs")
    if not os.path.isdir(directory):
        raise UserError(f"{directory}: not a directory; give the folder that holds the runs")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"{directory}: not writable, so {PAGE} cannot be written there; check its permissions")
    found = discover(directory, max_depth)
    page = _Page(directory)
    path = os.path.join(directory, PAGE)
    try:
        write_text(path, page.render(found, max_depth))
    except OSError as exc:
        raise UserError(f"{path}: cannot be written ({exc.strerror or exc}); check the folder") from None
    if found:
        say(f"wrote {path}: {_count(found.runs, 'run')}, {_count(found.figures, 'figure')}, "
            f"{_count(found.comparisons, 'comparison')}")
    else:
        say(f"{directory}: nothing to show within {max_depth} levels ({_LOOKED_FOR}); wrote {path} saying so")
    return path


_LOOKED_FOR = "no STEM_losses.csv, no folder with sheet.png + cells.csv or comparison.png + metrics.json"


def _count(items, noun):
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _format(value):
    if isinstance(value, float):  # whole numbers as integers (sizes, evaluations), others to 4 digits
        return str(int(value)) if math.isfinite(value) and value == int(value) and abs(value) < 1e6 \
            else f"{value:.4g}"
    if isinstance(value, (bool, list, dict)) or value is None:
        return json.dumps(value)
    return str(value)


def _flatten(mapping, prefix=""):
    """Nested JSON objects as dotted keys, so any settings or metrics file becomes one key/value table."""
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def read_losses(path):
    """(terms, rows): every column but size/iteration/evaluations/seconds is a term (total first); the rows
    as dicts of floats (NaN where empty or not a number). Terms empty in every row are left out."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [{key: _number(value) for key, value in row.items() if key is not None} for row in reader]
        columns = reader.fieldnames or []
    terms = [c for c in columns if c not in NOT_TERMS and any(math.isfinite(r[c]) for r in rows)]
    terms.sort(key=lambda c: c != "total")
    return terms, rows


def sparkline(totals, sizes, width=260, height=56, margin=3):
    """Inline SVG of log10(total) against the row number; a new polyline wherever the scale changes or a
    value is not a positive finite number (a gap, not a line to zero). Empty when under two points."""
    values = [math.log10(v) if math.isfinite(v) and v > 0 else None for v in totals]
    finite = [v for v in values if v is not None]
    if len(finite) < 2:
        return ""
    lo, hi = min(finite), max(finite)
    span_y, span_x = (hi - lo) or 1.0, max(1, len(values) - 1)
    segments, current = [], []
    for i, v in enumerate(values):
        if v is None or (i and sizes[i] != sizes[i - 1]):
            segments.append(current)
            current = []
        if v is not None:
            current.append((margin + (width - 2 * margin) * i / span_x,
                            margin + (height - 2 * margin) * (hi - v) / span_y))
    segments.append(current)
    lines = "".join('<polyline points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in s) + '"/>'
                    for s in segments if len(s) > 1)
    dots = "".join(f'<circle cx="{s[0][0]:.1f}" cy="{s[0][1]:.1f}" r="1.5"/>' for s in segments if len(s) == 1)
    return (f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="total loss, log scale"><title>total loss per evaluation, log scale: '
            f'{10 ** hi:.3g} to {10 ** lo:.3g}</title>{lines}{dots}</svg>')


class _Page:
    """Builds the HTML; every text that comes from a file or a file name goes through _e (html.escape)."""

    def __init__(self, directory):
        self.directory = os.path.abspath(directory)
        self.ids, self.toc = {}, []  # toc: (kind, anchor, title) of every article, in page order

    def _url(self, path):
        """Relative, percent-encoded link from index.html to a file (so `<` or `#` in a name stay names)."""
        return quote(os.path.relpath(path, self.directory).replace(os.sep, "/"))

    def _rel(self, path):
        return os.path.relpath(path, self.directory).replace(os.sep, "/")

    def _id(self, kind):
        self.ids[kind] = self.ids.get(kind, 0) + 1
        return f"{kind}-{self.ids[kind]}"

    def _image(self, path, alt, css=""):
        try:
            with Image.open(path) as im:
                size = f' width="{im.width}" height="{im.height}"'
        except (OSError, ValueError, Image.DecompressionBombError):
            size = ""  # the browser shows its broken-image sign; the link still names the file
        url, css = self._url(path), f' class="{css}"' if css else ""
        return f'<a href="{url}"><img src="{url}" alt="{_e(alt)}"{size}{css}></a>'

    def _cell(self, value, folder):
        """A table cell; a value naming a file inside the report's folder becomes a link to it."""
        text = _format(value)
        if isinstance(value, str) and value and not os.path.isabs(value):
            target = os.path.realpath(os.path.join(folder, value))
            if os.path.isfile(target) and target.startswith(self.directory + os.sep):
                return f'<a href="{self._url(target)}">{_e(text)}</a>'
        return _e(text)

    def _key_values(self, mapping, folder, css="kv"):
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{self._cell(v, folder)}</td></tr>" for k, v in _flatten(mapping))
        return f'<div class="scroll"><table class="{css}">{rows}</table></div>'

    def _table(self, header, rows, folder):
        head = "".join(f"<th>{_e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{self._cell(r.get(h, ''), folder)}</td>" for h in header) + "</tr>"
                       for r in rows)
        return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'

    def _json(self, path, folder):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict):
            return self._key_values(data, folder)
        if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
            header = list(dict.fromkeys(k for r in data for k in r))
            return self._table(header, data, folder)
        return f"<pre>{_e(json.dumps(data, indent=1))}</pre>"

    def _guarded(self, path, build):
        """build(), or a line saying which file could not be read and why."""
        try:
            return build()
        except (OSError, ValueError, csv.Error, UnicodeDecodeError) as exc:
            return f'<p class="error">could not read {_e(self._rel(path))}: {_e(str(exc))}</p>'

    # ---- items -------------------------------------------------------------------------------------------

    def figure(self, folder):
        csv_path = os.path.join(folder, "cells.csv")

        def table():
            with open(csv_path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
            return self._table(reader.fieldnames or [], rows, folder)

        return self._article("figure", self._rel(folder) or ".", "",
                             self._image(os.path.join(folder, "sheet.png"), "figure sheet", "sheet")
                             + self._guarded(csv_path, table))

    def comparison(self, folder):
        metrics = os.path.join(folder, "metrics.json")
        return self._article("comparison", self._rel(folder) or ".", "",
                             self._image(os.path.join(folder, "comparison.png"), "comparison", "sheet")
                             + self._guarded(metrics, lambda: self._json(metrics, folder)))

    def run(self, folder, stem):
        names = set(os.listdir(folder))
        base = os.path.join(folder, stem)
        result = next((stem + ext for ext in IMAGE_EXTENSIONS if stem + ext in names), None)
        partial = next((f"{stem}.partial{ext}" for ext in IMAGE_EXTENSIONS if f"{stem}.partial{ext}" in names), None)
        if result:
            picture = self._image(os.path.join(folder, result), f"result {stem}", "result")
        elif partial:
            picture = (self._image(os.path.join(folder, partial), f"partial result {stem}", "result")
                       + '<p class="note">interrupted: best image so far (STEM.partial)</p>')
        else:
            picture = '<p class="note">no result image beside the loss log</p>'
        losses = self._guarded(base + LOSSES_SUFFIX, lambda: self._losses(base + LOSSES_SUFFIX))
        settings = (self._guarded(base + ".json", lambda: self._json(base + ".json", folder))
                    if stem + ".json" in names else "")
        extras = [(f"{stem}_losses.png", "loss plot"), (f"{stem}_grid.png", "grid")]
        pattern = re.compile(re.escape(stem) + r"_(scale|at_evaluation_)(\d+)(\.[A-Za-z]+)$")
        steps = sorted((int(m[2]), m[1], m[0]) for m in map(pattern.match, names)
                       if m and m[3].lower() in IMAGE_EXTENSIONS)
        extras += [(name, f"{'scale' if kind == 'scale' else 'iteration'} {n}") for n, kind, name in steps]
        thumbs = "".join(f"<figure>{self._image(os.path.join(folder, n), label, 'plot' if n == extras[0][0] else '')}"
                         f"<figcaption>{_e(label)}</figcaption></figure>" for n, label in extras if n in names)
        settings = "<h4>settings</h4>" + settings if settings else ""
        thumbs = f'<div class="thumbs">{thumbs}</div>' if thumbs else ""
        body = f'<div class="run"><div>{picture}</div><div>{losses}{settings}</div></div>{thumbs}'
        return self._article("run", stem, self._rel(folder), body)

    def _losses(self, path):
        terms, rows = read_losses(path)
        if not rows:
            return '<p class="note">the loss log has no rows yet</p>'
        last = rows[-1]
        facts = [f"{_format(last['evaluations'])} evaluations"] if math.isfinite(last.get("evaluations", math.nan)) else []
        if math.isfinite(last.get("iteration", math.nan)):
            facts.append(f"iteration {_format(last['iteration'])}")
        sizes = [r.get("size", math.nan) for r in rows]
        scales = list(dict.fromkeys(_format(s) for s in sizes if math.isfinite(s)))
        if scales:
            facts.append(f"size {' → '.join(scales)} px")
        if math.isfinite(last.get("seconds", math.nan)):
            facts.append(f"{last['seconds']:.1f} s")
        totals = [r.get("total", math.nan) for r in rows]
        spark = sparkline(totals, sizes) if "total" in terms else ""
        table = "".join(
            f"<tr><th>{_e(t)}</th><td>{_e(_format(last[t]))}</td>"
            f"<td>{_e(_format(min((r[t] for r in rows if math.isfinite(r[t])), default=math.nan)))}</td></tr>"
            for t in terms)
        spark = f'<div class="sparkbox">{spark}<span>total, log scale</span></div>' if spark else ""
        return (f'<p class="facts">{_e(" · ".join(facts))}</p>{spark}'
                f'<table class="losses"><thead><tr><th>loss</th><th>final</th><th>lowest</th></tr></thead>'
                f"<tbody>{table}</tbody></table>")

    def _article(self, kind, title, subtitle, body):
        anchor = self._id(kind)
        self.toc.append((kind, anchor, title))
        sub = f'<p class="path">{_e(subtitle)}/</p>' if subtitle and subtitle != "." else ""
        return f'<article id="{anchor}"><h3>{_e(title)}</h3>{sub}{body}</article>'

    # ---- page --------------------------------------------------------------------------------------------

    def render(self, found, max_depth):
        sections = []
        for kind, heading, items in (("figure", "Figures", [self.figure(f) for f in found.figures]),
                                     ("comparison", "Comparisons", [self.comparison(f) for f in found.comparisons]),
                                     ("run", "Runs", [self.run(f, s) for f, s in found.runs])):
            if items:
                sections.append((kind, heading, len(items), f'<section id="{kind}s"><h2>{heading}</h2>{"".join(items)}</section>'))
        name = os.path.basename(self.directory.rstrip(os.sep)) or self.directory
        when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        if sections:
            toc = "".join(
                f'<li><a href="#{kind}s">{heading}</a> ({n})<ul>'
                + "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for k, a, t in self.toc if k == kind)
                + "</ul></li>" for kind, heading, n, _ in sections)
            main = f'<nav class="toc"><h2>Contents</h2><ul>{toc}</ul></nav>' + "".join(s for *_, s in sections)
        else:
            main = (f'<p class="empty">Nothing to show here: {_e(_LOOKED_FOR)} within {max_depth} levels of '
                    f"this folder.</p>")
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{_e(name)} — legacy_nst report</title><style>{CSS}</style></head><body>"
                f"<header><h1>{_e(name)}</h1><p class=\"meta\">legacy_nst report of {_e(self.directory)} · "
                f"generated {when}</p></header><main>{main}</main></body></html>\n")


def _e(text):
    return html.escape(str(text), quote=True)


CSS = """
:root { --ink: #1c2330; --muted: #5d6778; --line: #e1e5ec; --bg: #f5f6f8; --card: #fff; --accent: #2b5cad; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header, main { max-width: 1200px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 28px; }
h1 { font-size: 26px; margin: 0; }
.meta { color: var(--muted); margin: 2px 0 0; font-size: 13px; }
nav.toc { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 20px;
          margin: 20px 0 8px; }
nav.toc h2 { font-size: 15px; margin: 0 0 4px; text-transform: uppercase; letter-spacing: .05em;
             color: var(--muted); }
nav.toc ul { margin: 0; padding-left: 18px; }
nav.toc ul ul { display: flex; flex-wrap: wrap; gap: 0 22px; padding-left: 14px; font-size: 14px; }
nav.toc ul ul li { list-style: none; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
section > h2 { font-size: 20px; margin: 32px 0 0; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
article { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
          margin: 16px 0; }
article h3 { margin: 0; font-size: 17px; overflow-wrap: anywhere; }
article h4 { margin: 14px 0 4px; font-size: 13px; color: var(--muted); text-transform: uppercase;
             letter-spacing: .05em; }
.path { color: var(--muted); font-size: 13px; margin: 0; overflow-wrap: anywhere; }
img { display: block; max-width: 100%; height: auto; border-radius: 4px; margin-top: 10px; }
img.sheet { max-height: 720px; width: auto; }
.run { display: grid; grid-template-columns: fit-content(460px) minmax(0, 1fr); gap: 28px; }
@media (max-width: 800px) { .run { grid-template-columns: 1fr; } }
.facts { margin: 10px 0 4px; color: var(--muted); font-size: 14px; }
.sparkbox { display: flex; align-items: center; gap: 10px; margin: 4px 0 8px; }
.sparkbox span { font-size: 12px; color: var(--muted); }
svg.spark { background: #fafbfc; border: 1px solid var(--line); border-radius: 4px; }
svg.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; stroke-linejoin: round; }
svg.spark circle { fill: var(--accent); }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; margin-top: 10px; }
th, td { padding: 3px 12px 3px 0; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { color: var(--muted); font-weight: 600; border-bottom: 2px solid var(--line); }
table.kv th { font-weight: normal; color: var(--muted); white-space: nowrap; }
td { overflow-wrap: anywhere; }
.scroll { max-height: 300px; overflow: auto; }
.scroll:has(table.kv) { border: 1px solid var(--line); border-radius: 4px; padding: 0 10px 6px;
                        width: fit-content; max-width: 100%; }
.scroll table.kv { margin-top: 4px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 14px; margin-top: 14px; padding-top: 10px;
          border-top: 1px solid var(--line); }
.thumbs figure { margin: 0; }
.thumbs img { max-height: 170px; width: auto; }
.thumbs img.plot { max-height: 300px; }
figcaption { font-size: 12px; color: var(--muted); }
.note { color: var(--muted); font-style: italic; }
.error { color: #a61b1b; }
.empty { background: var(--card); border: 1px dashed #b9c0cc; border-radius: 8px; padding: 28px;
         margin-top: 24px; text-align: center; color: var(--muted); font-size: 16px; }
"""
