"""Every file the project writes appears whole or not at all: temp file in the same directory, then rename."""
import contextlib
import os
import secrets

TEMP_SUFFIX = ".part"


def temp_name(path):
    """The short hidden temporary name used beside `path` (its length is what `longest_temp_name` plans for)."""
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{secrets.token_hex(6)}{TEMP_SUFFIX}")


TEMP_NAME_LENGTH = len(os.path.basename(temp_name("x")))


@contextlib.contextmanager
def atomic_path(path, overwrite=True):
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on failure removed.

    overwrite=False never replaces a file: the temporary file is hard-linked to `path`, which fails
    atomically if a file appeared there meanwhile (FileExistsError), then unlinked."""
    tmp = None
    try:  # the name is known before the file exists, so a signal landing at any point cannot orphan it
        for _ in range(100):
            tmp = temp_name(path)
            try:  # 0o666 minus the umask, as open() gives (mkstemp's 0600 would make every output private)
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:
                tmp = None
        else:
            raise FileExistsError(f"no free temporary name beside {path}")
        yield tmp
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.remove(tmp)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text, overwrite=True):
    with atomic_path(path, overwrite) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
