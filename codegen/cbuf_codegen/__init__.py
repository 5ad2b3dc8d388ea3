"""cbuf code generator: JSON column schema -> typed C++ header and Python/NumPy module.

Pipeline of pure stages, one module each: load -> validate -> model -> render -> write; cli parses arguments.
"""
from pathlib import Path

from .errors import SchemaError
from .pipeline import generate, load_model

# The one place the version is written (CMakeLists.txt, pyproject.toml and cbuf._core read this file).
__version__ = Path(__file__).with_name("VERSION").read_text(encoding="utf-8").strip()
__all__ = ["SchemaError", "generate", "load_model", "__version__"]
