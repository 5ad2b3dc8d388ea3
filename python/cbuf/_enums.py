"""The documented option strings ("oldest", "block", "try", ...) as the runtime's enums (cbuf._core.Start,
Idle, Feature): the binding takes the enums, the Python API keeps taking the strings."""


def choice(enum, value, what: str, also: str = "", internal: tuple = ()):
    """The member of `enum` named `value` (a member passes as is), or ValueError naming the choices. Members
    named in `internal` are not options a user writes (Start.index: the binding's "start at start_index")."""
    if isinstance(value, enum):
        return value
    member = enum.__members__.get(value) if isinstance(value, str) and value not in internal else None
    if member is None:
        names = [repr(n) for n in enum.__members__ if n not in internal]
        listed = ", ".join(names[:-1]) + (f", {names[-1]}{also}" if also else f" or {names[-1]}")
        raise ValueError(f"{what} must be {listed}, not {value!r}")
    return member
