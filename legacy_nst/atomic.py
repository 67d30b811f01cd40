"""Every file the project writes appears whole or not at all: temp file in the same directory, then rename."""
import contextlib
import os
import secrets


@contextlib.contextmanager
def atomic_path(path, overwrite=True):
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on failure removed."""
    directory = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    tmp = None
    try:  # the name is known before the file exists, so a signal landing at any point cannot orphan it
        for _ in range(100):
            tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.part{ext}")
            try:  # 0o666 minus the umask, as open() gives (mkstemp's 0600 would make every output private)
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:
                tmp = None
        else:
            raise FileExistsError(f"no free temporary name beside {path}")
        yield tmp
        if not overwrite and os.path.exists(path):
            raise FileExistsError(path)
        os.replace(tmp, path)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
