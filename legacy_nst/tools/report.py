"""One static HTML page (DIR/index.html) showing what a directory of runs, figures and comparisons holds.

No server, no JavaScript, nothing fetched: the CSS is inline, the loss sparklines are inline SVG drawn here,
images are linked by paths relative to DIR. What is found, at most MAX_DEPTH folders below DIR:
  run         STEM_losses.csv, with STEM.<image ext> (or STEM.partial.<ext>), STEM.json (settings),
              STEM_losses.png, STEM_grid.png, STEM_scaleN.<ext>, STEM_at_evaluation_N.<ext> when present;
  figure      a folder with sheet.png and cells.csv;
  comparison  a folder with comparison.png and metrics.json.
The page opens with a gallery (figures as their sheets, sweeps as a grid over their swept keys, the other
runs as a contact sheet, comparisons); the details follow, each behind <details> where it is long.
A file that cannot be read is reported on its item, in place; it never stops the page. Nothing outside DIR
is read: every path is resolved, and a link leaving DIR, a pipe or a device is skipped with a note. The page
carries a generator mark, so a later report replaces its own page and never a hand-written one.
"""
import csv
import dataclasses
import datetime
import html
import json
import math
import os
import re
import stat
from urllib.parse import quote

from PIL import Image

from ..atomic import write_text
from ..errors import UserError

MAX_DEPTH = 3
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
NOT_TERMS = ("size", "iteration", "evaluations", "seconds")
LOSSES_SUFFIX = "_losses.csv"
PAGE = "index.html"
GENERATOR = '<meta name="generator" content="legacy_nst report">'
THUMB = 150  # px: gallery thumbnails' height
# a batch sweep's job names: BASE-KEY=VALUE[-KEY=VALUE...] (jobsfile.py names them so)
SWEEP = re.compile(r"^(?P<base>.+?)-(?P<pairs>[^-=]+=[^=]+?(?:-[^-=]+=[^=]+?)*)$")


@dataclasses.dataclass
class Found:
    runs: list = dataclasses.field(default_factory=list)  # (folder, stem)
    figures: list = dataclasses.field(default_factory=list)  # folders
    comparisons: list = dataclasses.field(default_factory=list)  # folders
    linked: list = dataclasses.field(default_factory=list)  # (folder link, why it was not entered)

    def __bool__(self):
        return bool(self.runs or self.figures or self.comparisons)


def discover(directory, max_depth=MAX_DEPTH):
    """Every run, figure and comparison folder within max_depth levels below directory, in path order."""
    found = Found()
    root = os.path.realpath(directory)
    root_depth = os.path.abspath(directory).rstrip(os.sep).count(os.sep)
    for folder, subfolders, files in os.walk(directory):  # links to folders are never followed
        depth = os.path.abspath(folder).rstrip(os.sep).count(os.sep) - root_depth
        # hidden names: temporary files being written (atomic.py's ".NAME.xxxx.part.EXT") and tool folders
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")) if depth < max_depth else []
        for name in [d for d in subfolders if os.path.islink(os.path.join(folder, d))]:
            link = os.path.join(folder, name)
            inside = os.path.realpath(link).startswith(root + os.sep)
            found.linked.append((link, "a link to a folder in this folder: shown where it is" if inside
                                 else "a link to a folder outside this folder: not read"))
        names = {f for f in files if not f.startswith(".")}
        if {"sheet.png", "cells.csv"} <= names:
            found.figures.append(folder)
        if {"comparison.png", "metrics.json"} <= names:
            found.comparisons.append(folder)
        found.runs += [(folder, f[: -len(LOSSES_SUFFIX)]) for f in sorted(names)
                       if f.endswith(LOSSES_SUFFIX) and len(f) > len(LOSSES_SUFFIX)]
    return found


def _ours(path):
    """Whether `path` is a page this module wrote (a regular file with the generator mark near its top)."""
    try:
        if os.path.islink(path) or not os.path.isfile(path):
            return False
        with open(path, "rb") as f:
            return GENERATOR.encode() in f.read(4096)
    except OSError:
        return False


def write_report(directory, max_depth=MAX_DEPTH, say=print, overwrite=False):
    """Write DIR/index.html (atomically) for everything discover() finds; say() one line of what it holds.
    An index.html this module did not write is replaced only with `overwrite`."""
    directory = os.fspath(directory)
    if max_depth < 0:
        raise UserError(f"--depth {max_depth}: must be 0 (DIR itself) or more")
    if not os.path.exists(directory):
        raise UserError(f"{directory}: no such directory; give the folder that holds the runs")
    if not os.path.isdir(directory):
        raise UserError(f"{directory}: not a directory; give the folder that holds the runs")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"{directory}: not writable, so {PAGE} cannot be written there; check its permissions")
    path = os.path.join(directory, PAGE)
    if os.path.lexists(path) and not overwrite and not _ours(path) and not os.path.isdir(path):
        raise UserError(f"{path}: not a page this report wrote; pass --overwrite to replace it, or move it away")
    found = discover(directory, max_depth)
    page = _Page(directory)
    try:
        write_text(path, page.render(found, max_depth))
    except OSError as exc:
        raise UserError(f"{path}: cannot be written ({exc.strerror or exc}); check the folder") from None
    skipped = f"; skipped {_count(found.linked, 'linked folder')} (see the page)" if found.linked else ""
    if found:
        say(f"wrote {path}: {_count(found.runs, 'run')}, {_count(found.figures, 'figure')}, "
            f"{_count(found.comparisons, 'comparison')}{skipped}")
    else:
        say(f"{directory}: nothing to show within {max_depth} levels ({_LOOKED_FOR}); wrote {path} saying so{skipped}")
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


def _text(value):
    """A str that can be written as UTF-8: a file name's undecodable bytes (\\xff) shown as escapes."""
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _e(text):
    return html.escape(_text(text), quote=True)


def _ordered(values):
    """A sweep's values in numeric order when they are all numbers, else in the order found."""
    values = list(values)
    return sorted(values, key=float) if all(math.isfinite(_number(v)) for v in values) else values


def sweep_of(stem):
    """(base, ((key, value), ...)) of a sweep job's name, or None."""
    match = SWEEP.match(stem)
    if not match:
        return None
    pairs = tuple(tuple(pair.split("=", 1)) for pair in re.split(r"-(?=[^-=]+=)", match["pairs"]))
    return match["base"], pairs


class _Page:
    """Builds the HTML; every text that comes from a file or a file name goes through _e (html.escape), and
    every file is read through _guarded, which reads nothing outside the folder and no pipe or device."""

    def __init__(self, directory):
        self.directory = os.path.realpath(directory)
        self.ids, self.toc = {}, []  # toc: (kind, anchor, title) of every article, in page order
        self.results = []  # (anchor, folder, stem, result image or None, final total) of every run

    def _url(self, path):
        """Relative, percent-encoded link from index.html to a file (so `<` or `#` in a name stay names)."""
        relative = os.path.relpath(path, self.directory).replace(os.sep, "/")
        return quote(relative.encode("utf-8", "surrogateescape"))

    def _rel(self, path):
        return os.path.relpath(path, self.directory).replace(os.sep, "/")

    def _id(self, kind):
        self.ids[kind] = self.ids.get(kind, 0) + 1
        return f"{kind}-{self.ids[kind]}"

    def refused(self, path):
        """Why `path` is not read (a link leaving the folder, not a regular file), or None."""
        real = os.path.realpath(path)
        if not real.startswith(self.directory + os.sep):
            return "a link to a file outside this folder: not read"
        try:
            mode = os.stat(real).st_mode
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        if not stat.S_ISREG(mode):
            return "not a regular file (a pipe, socket or device): not read"
        return None

    def _image(self, path, alt, css=""):
        why = self.refused(path)
        if why:
            return f'<p class="error">{_e(self._rel(path))}: {_e(why)}</p>'
        try:
            with Image.open(path) as im:
                size = f' width="{im.width}" height="{im.height}"'
        except (OSError, ValueError, Image.DecompressionBombError):
            size = ""  # the browser shows its broken-image sign; the link still names the file
        url, css = self._url(path), f' class="{css}"' if css else ""
        return f'<a href="{url}"><img src="{url}" alt="{_e(alt)}"{size}{css} loading="lazy"></a>'

    def _cell(self, value, folder):
        """A table cell; a value naming a file inside the report's folder becomes a link to it."""
        text = _format(value)
        if isinstance(value, str) and value and not os.path.isabs(value):
            target = os.path.join(folder, value)
            if os.path.isfile(target) and not self.refused(target):
                return f'<a href="{self._url(os.path.realpath(target))}">{_e(text)}</a>'
        return _e(text)

    def _key_values(self, mapping, folder, css="kv"):
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{self._cell(v, folder)}</td></tr>" for k, v in _flatten(mapping))
        return f'<table class="{css}">{rows}</table>'

    def _table(self, header, rows, folder):
        head = "".join(f"<th>{_e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{self._cell(r.get(h, ''), folder)}</td>" for h in header) + "</tr>"
                       for r in rows)
        return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'

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
        """build(), or a line saying which file was not read and why (never outside the folder, never a
        pipe: either would leak or block)."""
        why = self.refused(path)
        if why:
            return f'<p class="error">skipped {_e(self._rel(path))}: {_e(why)}</p>'
        try:
            return build()
        except (OSError, ValueError, csv.Error, UnicodeError, RecursionError) as exc:
            reason = "nested too deeply to read" if isinstance(exc, RecursionError) else str(exc)
            return f'<p class="error">could not read {_e(self._rel(path))}: {_e(reason)}</p>'

    @staticmethod
    def _details(summary, body):
        return f"<details><summary>{_e(summary)}</summary>{body}</details>" if body else ""

    # ---- items -------------------------------------------------------------------------------------------

    def figure(self, folder):
        csv_path = os.path.join(folder, "cells.csv")

        def table():
            with open(csv_path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
            return self._details(f"cells.csv: {_count(rows, 'cell')}", self._table(reader.fieldnames or [], rows,
                                                                                    folder))

        return self._article("figure", self._rel(folder) or ".", "",
                             self._image(os.path.join(folder, "sheet.png"), "figure sheet", "sheet")
                             + self._guarded(csv_path, table))

    def comparison(self, folder):
        metrics = os.path.join(folder, "metrics.json")
        return self._article("comparison", self._rel(folder) or ".", "",
                             self._image(os.path.join(folder, "comparison.png"), "comparison", "sheet")
                             + self._details("metrics", self._guarded(metrics, lambda: self._json(metrics, folder))))

    def run(self, folder, stem):
        names = set(os.listdir(folder))
        base = os.path.join(folder, stem)
        result = next((stem + ext for ext in IMAGE_EXTENSIONS if stem + ext in names), None)
        partial = next((f"{stem}.partial{ext}" for ext in IMAGE_EXTENSIONS if f"{stem}.partial{ext}" in names), None)
        shown = result or partial
        if result:
            picture = self._image(os.path.join(folder, result), f"result {stem}", "result")
        elif partial:
            picture = (self._image(os.path.join(folder, partial), f"partial result {stem}", "result")
                       + '<p class="note">interrupted: best image so far (STEM.partial)</p>')
        else:
            picture = '<p class="note">no result image beside the loss log</p>'
        summary = {}
        losses = self._guarded(base + LOSSES_SUFFIX, lambda: self._losses(base + LOSSES_SUFFIX, summary))
        table = summary.pop("table", "")
        settings = (self._guarded(base + ".json", lambda: self._json(base + ".json", folder))
                    if stem + ".json" in names else "")
        extras = [(f"{stem}_losses.png", "loss plot"), (f"{stem}_grid.png", "grid")]
        pattern = re.compile(re.escape(stem) + r"_(scale|at_evaluation_)(\d+)(\.[A-Za-z]+)$")
        steps = sorted((int(m[2]), m[1], m[0]) for m in map(pattern.match, names)
                       if m and m[3].lower() in IMAGE_EXTENSIONS)
        extras += [(name, f"{'scale' if kind == 'scale' else 'evaluation'} {n}") for n, kind, name in steps]
        thumbs = "".join(f"<figure>{self._image(os.path.join(folder, n), label, 'plot' if n == extras[0][0] else '')}"
                         f"<figcaption>{_e(label)}</figcaption></figure>" for n, label in extras if n in names)
        body = (f'<div class="run"><div>{picture}</div><div>{losses}'
                f'{self._details("settings", settings)}'
                f'{self._details("loss plot, grid and snapshots", f"<div class=thumbs>{thumbs}</div>" if thumbs else "")}'
                f"</div><div>{table}</div></div>")
        article = self._article("run", stem, self._rel(folder), body)
        self.results.append((self.toc[-1][1], folder, stem, shown and os.path.join(folder, shown),
                             summary.get("final")))
        return article

    def _losses(self, path, summary):
        """The facts line (evaluations, not L-BFGS's unmoving iteration count) and a sparkline; into
        `summary`: "final" (the last total) and "table": each term at the start, at the end and at the
        evaluation with the lowest total (a term's own minimum can come from a row where the others are poor:
        the content term is 0 at the first evaluation from the photo)."""
        terms, rows = read_losses(path)
        if not rows:
            return '<p class="note">the loss log has no rows yet</p>'
        last = rows[-1]
        facts = [f"{_format(last['evaluations'])} evaluations"] if math.isfinite(last.get("evaluations", math.nan)) else []
        iterations = last.get("iteration", math.nan)
        if math.isfinite(iterations) and iterations > 0 and iterations != last.get("evaluations"):
            facts[-1:] = [f"{facts[-1]} ({_format(iterations)} iterations)"] if facts else [
                f"{_format(iterations)} iterations"]
        sizes = [r.get("size", math.nan) for r in rows]
        scales = list(dict.fromkeys(_format(s) for s in sizes if math.isfinite(s)))
        if scales:
            facts.append(f"size {' → '.join(scales)} px")
        if math.isfinite(last.get("seconds", math.nan)):
            facts.append(f"{last['seconds']:.1f} s")
        totals = [r.get("total", math.nan) for r in rows]
        spark = sparkline(totals, sizes) if "total" in terms else ""
        finite = [i for i, t in enumerate(totals) if math.isfinite(t)]
        best = min(finite, key=lambda i: totals[i]) if finite else len(rows) - 1
        summary["final"] = last.get("total")
        at_best = f"at the lowest total (evaluation {_format(rows[best].get('evaluations', best + 1))})"
        table = "".join(f"<tr><th>{_e(t)}</th><td>{_e(_format(rows[0][t]))}</td><td>{_e(_format(last[t]))}</td>"
                        f"<td>{_e(_format(rows[best][t]))}</td></tr>" for t in terms)
        spark = f'<div class="sparkbox">{spark}<span>total, log scale</span></div>' if spark else ""
        summary["table"] = (f'<table class="losses"><thead><tr><th>loss</th><th>first</th><th>final</th>'
                            f"<th>{_e(at_best)}</th></tr></thead><tbody>{table}</tbody></table>")
        return f'<p class="facts">{_e(" · ".join(facts))}</p>{spark}'


    def _article(self, kind, title, subtitle, body):
        anchor = self._id(kind)
        self.toc.append((kind, anchor, title))
        sub = f'<p class="path">{_e(subtitle)}/</p>' if subtitle and subtitle != "." else ""
        return f'<article id="{anchor}"><h3>{_e(title)}</h3>{sub}{body}</article>'

    # ---- gallery -----------------------------------------------------------------------------------------

    def _thumb(self, anchor, image, caption):
        picture = ('<span class="noimage">no image</span>' if image is None or self.refused(image) else
                   f'<img src="{self._url(image)}" alt="{_e(caption)}" loading="lazy">')
        return f'<a class="thumb" href="#{anchor}">{picture}<span>{_e(caption)}</span></a>'

    def _sweep_grid(self, base, keys, members):
        """A sweep as a table: rows over the first swept key, columns over the second (the others, if any,
        in the captions); a sweep over one key is one row, read left to right."""
        values = [_ordered(dict.fromkeys(dict(pairs)[k] for pairs, _ in members)) for k in keys[:2]]
        rows, cols = (values[0], values[1]) if len(keys) > 1 else ([""], values[0])
        cells = {}
        for pairs, (anchor, _, stem, image, final) in members:
            where = dict(pairs)
            rest = ", ".join(f"{k}={v}" for k, v in pairs[2:])
            caption = " · ".join(x for x in (rest, f"total {_format(final)}" if final is not None else "") if x)
            cell = (where[keys[0]], where[keys[1]]) if len(keys) > 1 else ("", where[keys[0]])
            cells.setdefault(cell, []).append(self._thumb(anchor, image, caption or stem))
        corner = f"{keys[0]} \\ {keys[1]}" if len(keys) > 1 else keys[0]
        head = f"<tr><th>{_e(corner)}</th>" + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr>"
        body = "".join(f"<tr><th>{_e(r)}</th>" + "".join(f"<td>{''.join(cells.get((r, c), []))}</td>" for c in cols)
                       + "</tr>" for r in rows)
        return (f'<div class="sweep"><h3>sweep {_e(base)}: {_e(" × ".join(keys))}</h3>'
                f'<table class="grid">{head}{body}</table></div>')

    def gallery(self, found):
        """The results first (a contact sheet, then each sweep as a grid), then the figures' sheets and the
        comparisons, each linking to its card."""
        sweeps, single = {}, []
        for entry in self.results:
            parsed = sweep_of(entry[2])
            if parsed:
                base, pairs = parsed
                sweeps.setdefault((os.path.dirname(entry[1]), base, tuple(k for k, _ in pairs)), []).append(
                    (pairs, entry))
            else:
                single.append(entry)
        grids = []
        for (_, base, keys), members in sweeps.items():
            if len(members) < 2:
                single += [entry for _, entry in members]
            else:
                grids.append(self._sweep_grid(base, keys, members))
        order = {anchor: i for i, (_, anchor, _) in enumerate(self.toc)}
        parts = ['<div class="contact">' + "".join(
            self._thumb(a, image, stem + (f" · total {_format(final)}" if final is not None else ""))
            for a, _, stem, image, final in sorted(single, key=lambda e: order[e[0]])) + "</div>"] if single else []
        parts += grids
        for kind, folders, name in (("figure", found.figures, "sheet.png"),
                                    ("comparison", found.comparisons, "comparison.png")):
            parts += [f'<a class="sheetlink" href="#{a}">{self._image_only(os.path.join(f, name), t)}'
                      f"<span>{kind} {_e(t)}</span></a>"
                      for (_, a, t), f in zip([x for x in self.toc if x[0] == kind], folders)]
        return f'<section id="gallery"><h2>Gallery</h2>{"".join(parts)}</section>' if parts else ""

    def _image_only(self, path, alt):
        if self.refused(path):
            return '<span class="noimage">not shown</span>'
        return f'<img class="sheet" src="{self._url(path)}" alt="{_e(alt)}" loading="lazy">'

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
            toc = " · ".join(f'<a href="#{kind}s">{heading} ({n})</a>' for kind, heading, n, _ in sections)
            main = (f'<nav class="toc">{toc}</nav>' + self.gallery(found) + "".join(s for *_, s in sections))
        else:
            main = (f'<p class="empty">Nothing to show here: {_e(_LOOKED_FOR)} within {max_depth} levels of '
                    f"this folder.</p>")
        main += "".join(f'<p class="error">skipped {_e(self._rel(link))}/: {_e(why)}</p>'
                        for link, why in found.linked)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{GENERATOR}'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{_e(name)} — legacy_nst report</title><style>{CSS}</style></head><body>"
                f"<header><h1>{_e(name)}</h1><p class=\"meta\">legacy_nst report of {_e(self.directory)} · "
                f"generated {when}</p></header><main>{main}</main></body></html>\n")


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
article { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 18px;
          margin: 10px 0; }
article h3 { margin: 0; font-size: 17px; overflow-wrap: anywhere; }
article h4 { margin: 14px 0 4px; font-size: 13px; color: var(--muted); text-transform: uppercase;
             letter-spacing: .05em; }
.path { color: var(--muted); font-size: 13px; margin: 0; overflow-wrap: anywhere; }
img { display: block; max-width: 100%; height: auto; border-radius: 4px; margin-top: 10px; }
img.sheet { max-height: 560px; width: auto; }
.run { display: grid; grid-template-columns: fit-content(260px) minmax(0, 1fr) minmax(0, 1fr); gap: 20px; }
img.result { max-height: 180px; width: auto; }
@media (max-width: 800px) { .run { grid-template-columns: 1fr; } a.thumb img { height: 90px; } }
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
table.losses td { overflow-wrap: normal; white-space: nowrap; }  /* 2.115e+07 broke at its "e" at 1280 px */
.wide { overflow-x: auto; }
details { margin-top: 8px; }
summary { cursor: pointer; color: var(--accent); font-size: 14px; }
#gallery .contact { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 12px; }
a.thumb { display: inline-flex; flex-direction: column; width: min-content; color: var(--ink); font-size: 12px; }
a.thumb img { height: 150px; width: auto; max-width: none; margin: 0; }
a.thumb span { overflow-wrap: anywhere; }
.noimage { display: flex; align-items: center; justify-content: center; height: 150px; width: 150px;
           background: var(--line); color: var(--muted); }
a.sheetlink { display: block; margin-top: 14px; color: var(--ink); }
a.sheetlink img.sheet { max-height: 300px; }
.sweep h3 { margin: 18px 0 0; font-size: 16px; }
table.grid td, table.grid th { border: none; padding: 4px 8px 4px 0; vertical-align: middle; }
table.grid a.thumb img { height: 120px; }
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
