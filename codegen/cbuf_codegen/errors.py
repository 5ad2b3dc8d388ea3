"""The one error type of the generator."""


class SchemaError(Exception):
    """A schema file is unusable. `file`, `pointer` (JSON pointer, "" for the whole document) and `fix` say
    where and what to do; str() is one paragraph meant for a person."""

    def __init__(self, file: str, pointer: str, problem: str, fix: str):
        self.file = file
        self.pointer = pointer
        self.problem = problem
        self.fix = fix
        where = f"{file}: {pointer}" if pointer else file
        super().__init__(f"{where}: {problem}. Fix: {fix}")
