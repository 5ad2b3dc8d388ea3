"""Stage 4: render the model through the Jinja2 templates. Templates only print what the model computed."""
from pathlib import Path

import jinja2

from .model import Model

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
OUTPUTS = (("cpp_header.hpp.j2", "{name}.hpp"), ("python_module.py.j2", "{name}.py"))


def _cpp_string(s: str) -> str:
    """A C++ string literal (the text is ASCII: canonical JSON escapes everything else)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _one_line(s: str) -> str:
    """Free text made safe for a // comment or a docstring line."""
    return " ".join(s.split()).replace('"""', "'''").replace("\\", "/")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["cpp_string"] = _cpp_string
    env.filters["py_string"] = repr
    env.filters["hex64"] = lambda v: f"0x{v:016x}"
    env.filters["one_line"] = _one_line
    env.filters["idl_string"] = lambda s: '"' + _one_line(s).replace('"', "'") + '"'  # an IDL string literal
    env.filters["py_doc"] = lambda s: _one_line(s).replace('"', "'")  # safe inside a """docstring"""
    return env


def render(model: Model, version: str, cpp: bool = True, python: bool = True, idl: bool = False) -> dict[str, str]:
    """Returns {file name: text} for the requested outputs (the OMG IDL of the row only if asked: idl.py)."""
    env = environment()
    out = {}
    for template, pattern in OUTPUTS:
        if (template.startswith("cpp") and not cpp) or (template.startswith("python") and not python):
            continue
        out[pattern.format(name=model.name)] = env.get_template(template).render(
            model=model, version=version, template=template)
    if idl:
        import json

        from . import idl as _idl
        out[f"{model.name}.idl"] = _idl.text(json.loads(model.canonical_json), model.fingerprint, version)
    return out
