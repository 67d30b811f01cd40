"""The exceptions front ends turn into one-line messages and exit codes."""


class UserError(Exception):
    """Bad input from the user: a file, flag or value. The message says what is wrong and what to do (exit 2)."""


class WriteError(Exception):
    """A file could not be written (disk full, a size limit, a file that appeared meanwhile): the environment
    failed, not the program (exit 1). The message names the file and the reason."""


class ThreadsFixed(UserError):
    """A run asked for a CPU thread count other than the one this process's TensorFlow already runs with
    (TensorFlow fixes it at its first run): the result would not be the bytes that count gives."""
