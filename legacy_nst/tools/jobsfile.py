"""A jobs file: many runs described as data (TOML, or JSON Lines), expanded and checked before any runs.

TOML:

    [defaults]                 # any job key; every [[job]] starts from these
    recipe = "preview"
    weights = "weights/vgg19_partial_block1-3.npz"
    size = 64                  # a recipe field: becomes an override
    [sweep]                    # every job is expanded over the product of these lists
    style_weight = [0.1, 1.0]
    seed = [1, 2]
    [[job]]
    name = "tubingen-starry"
    content = "images/tubingen.jpg"
    style = ["images/starry_night.jpg"]
    sweep = {iterations = [40, 80]}    # a job's own sweep adds to (or replaces keys of) [sweep]

JSON Lines (.jsonl): one job object per line, with the same keys (and its own "sweep"); no defaults.

Job keys: name, content, style (or styles: one path or a list), style_blend_weights, init_image, recipe,
weights, seed, scales ("256,512" or a list of sizes or "SIZE:EVALUATIONS" strings), device, tile, save_every, and
any recipe field (parsed by its annotation, as `--set` parses it). Relative paths are relative to the jobs
file. A job's name (default: content and style file stems) gets `-KEY=VALUE` for each swept key; the names
must be unique, as they name the output folders. Every problem is reported, one line each, naming the file,
the entry and the key, before anything runs.
"""
import dataclasses
import itertools
import json
import math
import os
import re
import stat
import tomllib
from pathlib import Path

from .. import engine, recipes
from ..errors import UserError
from ..runner.job import Job, Output, Style, parse_schedule, valid_blend_weights

PATH_KEYS = ("content", "init_image", "weights")
JOB_KEYS = ("name", "content", "style", "styles", "style_blend_weights", "init_image", "recipe", "weights", "seed",
            "scales", "device", "tile", "save_every")
TOP_KEYS = ("defaults", "sweep", "job")
NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,-]+")
# The most jobs a file may expand to, refused from the sweep's size before anything is enumerated: a
# [sweep] of 1000 x 1000 x 1000 was enumerated (memory rising, no answer after 60 s). A million is four
# times the 257 000 jobs of a 50 MB JSON Lines file, which loads in 7.8 s and reaches its first job after
# 18.7 s on 2 quiet AVX-512 EPYC cores (issue 20.10; 2.8 ms a job before each distinct value was converted
# once: 12 minutes).
MAX_JOBS = 1_000_000


class JobsFileError(UserError):
    """Every problem of a jobs file, one line each (file: entry: key: what is wrong)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _text(value, key):
    """A TOML/JSON value as the text `recipes.parse_field` reads (lists as space-separated items)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return " ".join(_text(v, key) for v in value)
    raise UserError(f"{key}: expected a value or a list of values, got {json.dumps(value, default=str)}")


def _path(value, key, base):
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{key}: expected a file path, got {json.dumps(value, default=str)}")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if path.is_dir():
        raise UserError(f"{key}: {path} is a directory; give an image file")
    if not path.is_file():
        raise UserError(f"{key}: no such file {path}")
    return str(path)


def _int(value, key, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{key}: expected a whole number of at least {minimum}, got {json.dumps(value)}")
    return value


def _scales(value):
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in items):
        raise UserError(f"scales: expected sizes like \"256,512\" or [256, \"512:100\"], got {json.dumps(value)}")
    try:
        return parse_schedule(",".join(map(str, items)))
    except ValueError as exc:
        raise UserError(f"scales: {exc}") from None


def _convert(key, value, base):
    """(key, value) as Job settings: ("job", field, value) or ("recipe", field, value)."""
    if key in PATH_KEYS:
        return "job", key, _path(value, key, base)
    if key in ("style", "styles"):
        items = value if isinstance(value, list) else [value]
        if not items:
            raise UserError(f"{key}: give at least one style image")
        return "job", "styles", tuple(_path(v, key, base) for v in items)
    if key == "style_blend_weights":
        items = value if isinstance(value, list) else [value]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)
        if not numbers or not valid_blend_weights(items):
            raise UserError(f"{key}: expected non-negative numbers with a positive sum, got {json.dumps(value)}")
        return "job", key, tuple(float(v) for v in items)
    if key == "recipe":
        if not isinstance(value, str):
            raise UserError(f"recipe: expected a recipe name, got {json.dumps(value)}")
        try:
            recipes.get(value)
        except UserError as exc:
            raise UserError(f"recipe: {exc}") from None
        return "job", key, value
    if key == "seed":
        return "job", key, _int(value, key, 0)
    if key == "save_every":
        return "job", key, _int(value, key, 0)
    if key == "tile":
        return "job", key, _int(value, key, 1)
    if key == "scales":
        return "job", "schedule", _scales(value)
    if key == "device":
        if value not in engine.DEVICES:
            raise UserError(f"device: expected one of {', '.join(engine.DEVICES)}, got {json.dumps(value)}")
        return "job", key, value
    if key == "name":
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"name: expected a non-empty text, got {json.dumps(value)}")
        return "job", key, value
    if key in recipes.field_types():
        return "recipe", key, recipes.parse_field(key, _text(value, key))
    known = JOB_KEYS + tuple(recipes.field_types())
    raise UserError(f"{key}: unknown key{recipes.suggest(key, known)} (job keys: {', '.join(JOB_KEYS)}; "
                    "or any recipe field, see --show-recipe NAME)")


def _label(value):
    """A swept value as it appears in a job name: numbers as written, files by their stem."""
    if isinstance(value, list):
        return "+".join(_label(v) for v in value)
    if isinstance(value, str) and ("/" in value or Path(value).suffix):
        return Path(value).stem
    return _text(value, "")


def _safe(name):
    return NAME_UNSAFE.sub("_", name).strip("._") or "job"


@dataclasses.dataclass
class _Entry:
    label: str  # how problems name it: "job 3 (tubingen)", "line 4", "[defaults]"
    settings: dict
    sweep: dict


def _read(path):
    """([defaults entry], [sweep dict], [job entries]) of a TOML or JSON Lines file; UserError if unreadable."""
    try:
        # opened without blocking and checked before reading: a FIFO (or a device) as the jobs file blocked
        # the batch forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise UserError(f"{path}: not a regular file; give a jobs file (.toml or .jsonl)")
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the jobs file ({exc.strerror if isinstance(exc, OSError) else exc})")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}: line {number}: not JSON ({exc.msg}, column {exc.colno})") from None
            if not isinstance(entry, dict):
                raise UserError(f"{path}: line {number}: expected a JSON object of job keys")
            entries.append((f"line {number}", entry))
        return {}, {}, entries
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc}); jobs files are TOML, or JSON Lines named .jsonl") from None
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise UserError(f"{path}: {unknown[0]}: unknown table{recipes.suggest(unknown[0], TOP_KEYS)} "
                        "(a jobs file has [defaults], [sweep] and [[job]] entries)")
    jobs = data.get("job", [])
    if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
        raise UserError(f"{path}: job: write each job as a [[job]] table")
    for name in ("defaults", "sweep"):
        if not isinstance(data.get(name, {}), dict):
            raise UserError(f"{path}: {name}: write it as a [{name}] table")
    entries = [(f"job {i} ({j['name']})" if isinstance(j.get("name"), str) else f"job {i}", j)
               for i, j in enumerate(jobs, 1)]
    return data.get("defaults", {}), data.get("sweep", {}), entries


def _sweep_problem(key, values):
    if key in ("name", "sweep"):
        return f"{key}: cannot be swept"
    if not isinstance(values, list) or not values:
        return f"{key}: a sweep needs a non-empty list of values, got {json.dumps(values, default=str)}"
    return None


def _default_name(settings):
    """content and style file stems (what is not swept), e.g. tubingen-starry_night."""
    styles = settings.get("style", settings.get("styles", []))
    paths = [settings.get("content")] + (styles if isinstance(styles, list) else [styles])
    return "-".join(Path(p).stem for p in paths if isinstance(p, str)) or "job"


def load_jobs(path):
    """The Jobs a jobs file describes, names unique, every value checked; JobsFileError lists all problems."""
    path = Path(path)
    defaults, sweep, raw = _read(path)
    base = path.resolve().parent
    problems = []

    def problem(entry, exc):
        line = f"{path}: {entry}: {exc}"
        if line not in problems:
            problems.append(line)

    memo = {}  # (key, value) -> its conversion or its UserError: jobs repeat values (one stat per path)

    def converted(entry, settings):
        out = {}
        for key, value in settings.items():
            seen = (key, type(value), value) if isinstance(value, (str, int, float)) else (
                key, json.dumps(value, sort_keys=True, default=str))
            if seen not in memo:
                try:
                    memo[seen] = _convert(key, value, base)
                except UserError as exc:
                    memo[seen] = exc
            if isinstance(memo[seen], UserError):
                problem(entry, memo[seen])
            else:
                out[key] = memo[seen]
        return out

    def checked_sweep(entry, table):
        """The keys whose every value is good; the others reported under `entry`."""
        good = {}
        for key, values in table.items():
            reason = _sweep_problem(key, values)
            if reason:
                problem(entry, reason)
            elif all(len(converted(entry, {key: value})) == 1 for value in values):
                good[key] = values
        return good

    sweep = checked_sweep("[sweep]", sweep)
    for key in ("name", "sweep"):
        if key in defaults:
            problem("[defaults]", f"{key}: belongs in a [[job]]")
    usable = {k: v for k, v in defaults.items() if k not in ("name", "sweep")}
    good = converted("[defaults]", usable)
    defaults = {k: v for k, v in usable.items() if k in good}  # a bad default is reported once, here
    bad_defaults = set(usable) - set(defaults)  # an entry inheriting one is not checked as a job again
    if not raw:
        problems.append(f"{path}: no jobs: add [[job]] tables (TOML) or one JSON object per line (.jsonl)")
    expanded = []  # (label, settings, sweep) per entry, counted before any is enumerated
    for label, table in raw:
        own_sweep = table.get("sweep", {})
        if not isinstance(own_sweep, dict):
            problem(label, "sweep: write it as a table of lists, e.g. sweep = {seed = [1, 2]}")
            continue
        merged_sweep = {**sweep, **checked_sweep(label, own_sweep)}
        settings = {**defaults, **{k: v for k, v in table.items() if k != "sweep"}}
        expanded.append((label, settings, merged_sweep, bool(bad_defaults - set(table))))
    count = sum(math.prod(len(values) for values in merged.values()) for _, _, merged, _ in expanded)
    if count > MAX_JOBS:
        label, _, merged, _ = max(expanded, key=lambda e: math.prod(len(v) for v in e[2].values()))
        sizes = " x ".join(str(len(values)) for values in merged.values())
        raise JobsFileError([f"{path}: {label}: sweep: expands to {count} jobs in all ({label}: {sizes}), more "
                             f"than the {MAX_JOBS} a batch takes; sweep fewer values, or split the file"])
    jobs, owners, checked = [], {}, {}
    for label, settings, merged_sweep, inherits_bad in expanded:
        for combination in itertools.product(*merged_sweep.values()):
            chosen = dict(zip(merged_sweep, combination))
            name = _safe((settings.get("name") if isinstance(settings.get("name"), str) else _default_name(
                {k: v for k, v in settings.items() if k not in chosen})) + "".join(
                f"-{key}={_label(value)}" for key, value in chosen.items()))
            if name in owners:
                problem(label, f"name: {name} is also the name of {owners[name]}; names must be unique "
                               "(they name the output folders)")
                break
            owners[name] = label
            merged = {**settings, **chosen}
            values = converted(label, merged)
            if len(values) < len(merged) or inherits_bad:
                break  # a bad value: reported once, not once per combination (nor per job for a default)
            job = _job(values, name, label, problem, checked)
            if job is not None:
                jobs.append(job)
    if problems:
        raise JobsFileError(problems)
    return jobs


def _job(values, name, label, problem, checked):
    """The Job of converted settings, or None after reporting a problem. `checked` holds the settings
    already checked ((recipe, overrides, schedule, save_every, blend) -> the problem or None): each is checked
    once. The seed is not among them: its conversion refused a negative one, all Job.check asks of it."""
    fields = {field: value for kind, field, value in values.values() if kind == "job"}
    overrides = {field: value for kind, field, value in values.values() if kind == "recipe"}
    if "style" in values and "styles" in values:
        problem(label, "styles: give style or styles, not both")
        return None
    styles = fields.pop("styles", ())
    blend = fields.pop("style_blend_weights", None)
    if blend is not None and len(blend) != len(styles):
        problem(label, f"style_blend_weights: {len(blend)} weights for {len(styles)} style images")
        return None
    if bool(fields.get("content")) != bool(styles):
        problem(label, "content: give both content and style (or neither, for the demo pair)")
        return None
    fields.pop("name", None)
    save_every = fields.pop("save_every", None)
    job = Job(styles=tuple(Style(s, w) for s, w in zip(styles, blend or [1.0] * len(styles))),
              overrides=overrides, name=name, output=Output(save_every=save_every), **fields)
    settings = repr((job.recipe, sorted(job.overrides.items()), job.schedule, save_every, blend))
    if settings not in checked:
        try:
            job.check()
            checked[settings] = None
        except UserError as exc:
            checked[settings] = exc
    if checked[settings] is not None:
        problem(label if label.endswith(f"({name})") else f"{label} as {name}", checked[settings])
        return None
    return job
