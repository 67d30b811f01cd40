"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a file, flag or value. The message says what is wrong and what to do."""
