"""The exceptions front ends turn into one-line messages and exit codes."""


class UserError(Exception):
    """Bad input from the user: a file, flag or value. The message says what is wrong and what to do (exit 2)."""


class WriteError(Exception):
    """A file could not be written (disk full, a size limit, a file that appeared meanwhile): the environment
    failed, not the program (exit 1). The message names the file and the reason."""
