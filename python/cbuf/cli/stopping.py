"""How long-running commands stop: SIGTERM (systemd, docker, timeout, kill) and SIGINT (Ctrl-C) set a flag that
the command's loop checks between bounded waits, then it ends as it would at its end - summary line, files
written, exit status 0.

Nothing is raised from the signal handler: an exception raised there lands wherever the main thread happens to
be - inside a clean-up, or in the interpreter's own shutdown waiting for threads, where it once left
`cbuf bridge sub` hanging ("Exception ignored in threading._shutdown").
"""
import signal
import threading

_requested = threading.Event()
# The commands whose loops watch the flag; every other command gets the default behaviour back in main().
WATCHING = ("record", "replay", "tail", "stat", "plot", "foxglove", "bridge")


class Stopped(Exception):
    """Raised where a command waits for something (a buffer to appear, a publisher to answer) and is stopped
    first: the command ends quietly with status 0."""


def _set(signum, frame) -> None:
    _requested.set()


def early() -> None:
    """Called first thing when the cbuf command starts (cli/__init__.py, before the heavy imports): a signal
    that comes while the command is still starting is kept, and the command stops at its first look."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _set)


def install() -> threading.Event:
    """Makes SIGTERM and SIGINT set the stop flag (returned) instead of killing or raising; one that came
    while the command started is kept."""
    early()
    return _requested


def release() -> None:
    """For a command that does not watch the flag: Ctrl-C raises KeyboardInterrupt and SIGTERM ends the
    process again, as they do by default - unless one came while it started: then it stops now."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    check()


def done() -> None:
    """Called when a command that watches the flag has finished (summary printed, files written): a signal
    from now on has nothing left to stop. It is ignored, not left to the default - which the interpreter puts
    back while it shuts down, where a second SIGTERM would end the process with status 143."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raises Stopped once a stop was requested."""
    if _requested.is_set():
        raise Stopped()
