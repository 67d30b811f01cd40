"""Every file the project writes appears whole or not at all: temp file in the same directory, then rename."""
import contextlib
import os
import secrets

# The temporary name keeps at most this many bytes of the final stem (cut at a character boundary), so
# `.{stem}.{tag}.{token}.part{ext}` stays under NAME_MAX (255 bytes) for any legal final name: with the whole
# stem, a legal 236-character stem failed (issue 14). 64 keeps the canonical weight file names whole.
STEM_BYTES = 64


def temp_stem(path):
    """The part of `path`'s stem that its temporary names carry."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.fsencode(stem)[:STEM_BYTES].decode("utf-8", "ignore")


@contextlib.contextmanager
def atomic_path(path, overwrite=True, tag=None):
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on failure removed.

    The name is `.{stem}.{tag}.{token}.part{ext}` (stem cut to STEM_BYTES; `tag.` only when given), so a
    writer can mark its temporary files, e.g. with its pid, to find them again when it was killed."""
    directory = os.path.dirname(os.path.abspath(path))
    ext = os.path.splitext(path)[1]
    prefix = f".{temp_stem(path)}.{tag + '.' if tag else ''}"
    tmp = None
    try:  # the name is known before the file exists, so a signal landing at any point cannot orphan it
        for _ in range(100):
            tmp = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}.part{ext}")
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
