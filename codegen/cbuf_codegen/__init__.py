"""cbuf code generator: JSON column schema -> typed C++ header and Python/NumPy module.

Pipeline of pure stages, one module each: load -> validate -> model -> render -> write; cli parses arguments.
"""
from .errors import SchemaError
from .pipeline import generate, load_model

__version__ = "0.1.0"
__all__ = ["SchemaError", "generate", "load_model", "__version__"]
