"""load -> validate -> model -> render -> write, composed."""
from pathlib import Path

from . import load as _load
from . import model as _model
from . import render as _render
from . import validate as _validate
from . import write as _write


def load_model(schema: str | Path, namespace: str | None = None) -> _model.Model:
    file, doc = _load.load(schema)
    return _model.build(file, _validate.validate(file, doc), namespace)


def generate(schema: str | Path, cpp_out: str | Path | None, python_out: str | Path | None = None,
             namespace: str | None = None, idl_out: str | Path | None = None) -> list[Path]:
    """Generates the C++ header into cpp_out, the Python module into python_out and the row's OMG IDL (for MCAP
    recordings and Foxglove: idl.py) into idl_out (any may be None). Returns the paths actually (re)written."""
    from . import __version__
    m = load_model(schema, namespace)
    texts = _render.render(m, __version__, cpp=cpp_out is not None, python=python_out is not None,
                           idl=idl_out is not None)
    written = []
    for name, text in texts.items():
        target = Path({".hpp": cpp_out, ".py": python_out, ".idl": idl_out}[Path(name).suffix]) / name
        if _write.write_if_changed(target, text):
            written.append(target)
    return written
