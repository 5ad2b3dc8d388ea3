"""The `cbuf` command's own failure: what the library raises is a cbuf.Error, mapped to one line at the edge
(cli/__init__.py); CliError is for what only the command decides (bad arguments, nothing to do)."""


class CliError(Exception):
    """A failure of the `cbuf` command: printed as `cbuf <command>: error: <message>`, exit status 1."""
