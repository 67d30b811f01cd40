"""Every file the project writes appears whole or not at all: temp file in the same directory, then rename."""
import contextlib
import os
import tempfile

# mkstemp creates files 0600; a finished file gets the mode open() would give it (0666 minus the umask).
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path, overwrite=True):
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on failure removed."""
    directory = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".part{ext}", dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make every output private
    try:
        yield tmp
        if not overwrite and os.path.exists(path):
            raise FileExistsError(path)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
