"""The names a run writes, derived from the result's path; checked and claimed before any heavy work.

Beside `--output DIR/STEM.EXT`: STEM_losses.csv and STEM_losses.png (the loss log and plot), STEM.json (the
settings), STEM_grid.png, STEM_at_evaluation_N.EXT (every N evaluations), STEM_at_restart_N.EXT (after
L-BFGS restart N), STEM_scaleS.EXT (each finished level; in a multi-scale run the numbered snapshots of
level L are STEM_levelL_at_evaluation_N.EXT and STEM_levelL_at_restart_N.EXT, since each level counts
from 1 and would otherwise replace the previous level's files), STEM.checkpoint.npz, STEM.partial.EXT (an
interrupted or failed run's best image, never under the final name), and .STEM.EXT.lock while it runs.

A run claims its names with the lock file (created exclusively; a second run with the same output is
refused while the first one's process lives). Files that exist when it starts are refused unless
--overwrite (a resume may continue its own); a file that appears after the start is never replaced.
"""
import glob
import os

from .. import images, liveness
from ..atomic import atomic_path, temp_name
from ..errors import UserError, WriteError


def name_max(directory):
    """NAME_MAX of the file system an existing `directory` is on (255 where it cannot be asked)."""
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


class OutputPaths:
    def __init__(self, result, levels=1):
        self.result = str(result)
        self.levels = levels  # levels of the schedule: more than one puts the level in snapshot names
        self.stem, self.ext = os.path.splitext(self.result)
        self.directory = os.path.dirname(os.path.abspath(self.result))
        self.log = f"{self.stem}_losses.csv"
        self.plot = f"{self.stem}_losses.png"
        self.settings = f"{self.stem}.json"
        self.grid = f"{self.stem}_grid.png"
        self.checkpoint = f"{self.stem}.checkpoint.npz"
        self.partial = f"{self.stem}.partial{self.ext}"
        self.lock = os.path.join(self.directory, f".{os.path.basename(self.result)}.lock")
        self._replaceable = set()
        self._locked = False

    def scale(self, size):
        return f"{self.stem}_scale{size}{self.ext}"

    def _numbered(self, level):
        return f"{self.stem}_level{level + 1}" if self.levels > 1 else self.stem

    def snapshot(self, evaluations, level=0):
        """After `evaluations` evaluations of level `level` (0-based)."""
        return f"{self._numbered(level)}_at_evaluation_{evaluations}{self.ext}"

    def restart(self, index, level=0):
        return f"{self._numbered(level)}_at_restart_{index}{self.ext}"

    def _series(self):
        """Glob patterns of the numbered files (never enumerated: a budget may be a billion evaluations)."""
        return [glob.escape(self.stem) + suffix for suffix in
                (f"_at_evaluation_*{self.ext}", f"_at_restart_*{self.ext}", f"_scale*{self.ext}",
                 f"_level*_at_*{self.ext}")]

    def check(self, inputs, overwrite, resuming_own, series=None):
        """Everything about the names, before any heavy work (UserError otherwise). `series` maps the
        numbered kinds the run will write ("snapshot", "restart", "scale") to their largest number."""
        images.check_output_extension(self.result)
        if not os.path.isdir(self.directory):
            raise UserError(f"--output {self.result}: directory {self.directory} does not exist; create it first")
        if not os.access(self.directory, os.W_OK):
            raise UserError(f"--output {self.result}: directory {self.directory} is not writable")
        for path in inputs:
            if path is not None and os.path.realpath(path) == os.path.realpath(self.result):
                raise UserError(f"--output {self.result} is also an input; choose another output path")
        self._check_name_lengths(series or {})
        fixed = [self.result, self.log, self.plot, self.settings, self.grid, self.checkpoint]
        for path in fixed + [self.partial]:
            if os.path.isdir(path):
                raise UserError(f"--output {self.result}: {path} is a directory; choose another --output")
        own = {self.log, self.plot, self.settings, self.grid, self.checkpoint}
        existing = [p for p in fixed if os.path.exists(p) and not (resuming_own and p in own)]
        if not resuming_own:
            existing += sorted(p for pattern in self._series() for p in glob.glob(pattern))
        if existing and not overwrite:
            raise UserError(f"{existing[0]} exists; pass --overwrite to replace it or choose another --output")
        if overwrite or resuming_own:
            self._replaceable.update(fixed + sorted(p for pat in self._series() for p in glob.glob(pat)))
        self._replaceable.add(self.partial)  # a partial image is superseded by anything newer

    def longest_name(self, series, temporaries=True):
        """The longest file name (bytes) this run can write: its fixed names, each numbered kind of `series`
        at its largest number, and (`temporaries`) the temporary names they are first written under."""
        names = [self.result, self.log, self.plot, self.settings, self.grid, self.checkpoint, self.partial,
                 self.lock]
        names += [getattr(self, kind)("9" * len(str(largest))) for kind, largest in series.items() if kind == "scale"]
        names += [getattr(self, kind)("9" * len(str(largest)), self.levels - 1) for kind, largest in series.items()
                  if kind != "scale"]
        if temporaries:
            names += [temp_name(p) for p in names]
        return max(map(os.path.basename, names), key=lambda name: len(name.encode()))

    def _check_name_lengths(self, series):
        limit = name_max(self.directory)
        longest = self.longest_name(series)
        if len(longest.encode()) > limit:
            raise UserError(f"--output {self.result}: the name is too long for this file system "
                            f"({os.path.join(self.directory, longest)} would need {len(longest.encode())} of "
                            f"{limit} bytes); choose a shorter --output")

    def claim(self):
        """Take the output names for this process (the lock file); a live owner means refusal."""
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    with open(self.lock, encoding="ascii") as f:
                        pid = int(f.read().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and liveness.may_run(pid):
                    raise UserError(f"--output {self.result}: another run (process {pid}) is writing these "
                                    "outputs; wait for it to finish or choose another --output") from None
                os.remove(self.lock)  # its process is gone: the lock is stale
                continue
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(str(os.getpid()))
            self._locked = True
            return
        raise UserError(f"--output {self.result}: could not take {self.lock}; remove it if no run is active")

    def release(self):
        if self._locked:
            self._locked = False
            try:
                os.remove(self.lock)
            except FileNotFoundError:
                pass

    def _write(self, path, write):
        """Run write(tmp) and rename into place; a file this run did not plan to replace is never replaced."""
        overwrite = path in self._replaceable
        try:
            with atomic_path(path, overwrite=overwrite) as tmp:
                write(tmp)
        except FileExistsError:
            raise WriteError(f"{path} appeared while this run was working (another program wrote it); "
                             "not replaced") from None
        except OSError as exc:
            raise WriteError(f"could not write {path}: {exc.strerror or exc}") from None
        self._replaceable.add(path)
        return path

    def write_image(self, path, image, alpha=None):
        fmt = images.check_output_extension(path)
        return self._write(path, lambda tmp: images.write_image_file(image, tmp, fmt, alpha))

    def write_text(self, path, text):
        return self._write(path, lambda tmp: _write_text_file(tmp, text))

    def write_with(self, path, writer):
        """For writers that take a path (np.savez, matplotlib)."""
        return self._write(path, writer)

    def remove_superseded(self):
        """A finished run's result supersedes any partial image of this output."""
        if os.path.exists(self.partial):
            os.remove(self.partial)


def _write_text_file(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
