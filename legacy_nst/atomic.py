"""Every file the project writes appears whole or not at all: temp file in the same directory, then rename."""
import contextlib
import os
import secrets

# The temporary name keeps at most this many bytes of the final stem (cut at a character boundary), so
# `.{stem}.{tag}.{token}.part{ext}` stays under NAME_MAX (255 bytes) for any legal final name: with the whole
# stem, a legal 236-character stem failed (issue 14). 64 keeps the canonical weight file names whole.
STEM_BYTES = 64
TOKEN_HEX = 12


def temp_stem(path):
    """The part of `path`'s stem that its temporary names carry."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.fsencode(stem)[:STEM_BYTES].decode("utf-8", "ignore")


def temp_name(path, tag=None):
    """A fresh temporary name beside `path`: `.{stem}.{tag}.{token}.part{ext}` (`tag.` only when given)."""
    directory = os.path.dirname(os.path.abspath(path))
    ext = os.path.splitext(path)[1]
    prefix = f".{temp_stem(path)}.{tag + '.' if tag else ''}"
    return os.path.join(directory, f"{prefix}{secrets.token_hex(TOKEN_HEX // 2)}.part{ext}")


@contextlib.contextmanager
def atomic_path(path, overwrite=True, tag=None):
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on failure removed.

    A writer can mark its temporary files with `tag` (e.g. its pid) to find them again when it was killed.
    overwrite=False never replaces a file: the temporary file is hard-linked to `path`, which fails
    atomically (FileExistsError) if a file appeared there meanwhile, then unlinked."""
    tmp = None
    try:  # the name is known before the file exists, so a signal landing at any point cannot orphan it
        for _ in range(100):
            tmp = temp_name(path, tag)
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


def write_text(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
