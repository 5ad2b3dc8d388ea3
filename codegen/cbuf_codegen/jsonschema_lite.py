"""A small JSON Schema (2020-12) validator for the keywords schema/cbuf.schema.json uses.

cbuf keeps its dependencies to Jinja2 and NumPy, so this implements exactly the subset the checked-in schema
needs, and refuses any other keyword in a schema it is given (so a keyword added to the schema can never be
silently ignored). Errors carry the JSON pointer of the offending value.
"""
import re

SUPPORTED = {
    "$schema", "$id", "$defs", "$ref", "title", "description", "type", "properties", "required",
    "additionalProperties", "items", "minItems", "maxItems", "pattern", "minLength", "maxLength",
    "minimum", "maximum", "enum",
}

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class ValidationError(Exception):
    def __init__(self, pointer: str, keyword: str, message: str, detail=None):
        self.pointer = pointer
        self.keyword = keyword
        self.message = message
        self.detail = detail
        super().__init__(f"{pointer or '/'}: {message}")


def type_name(v) -> str:
    for name in ("boolean", "integer", "number", "string", "array", "object", "null"):
        if _TYPES[name](v):
            return name
    return type(v).__name__


def check_schema(schema: dict, where: str = "#") -> None:
    """Raises ValueError if the schema uses a keyword this validator does not implement."""
    if not isinstance(schema, dict):
        return
    for key, sub in schema.items():
        if key not in SUPPORTED:
            raise ValueError(f"JSON Schema keyword {key!r} at {where} is not supported by jsonschema_lite")
        if key in ("properties", "$defs"):
            for name, s in sub.items():
                check_schema(s, f"{where}/{key}/{name}")
        elif key == "items" or (key == "additionalProperties" and isinstance(sub, dict)):
            check_schema(sub, f"{where}/{key}")


def _escape(token) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def validate(instance, schema: dict, root: dict | None = None, pointer: str = "") -> None:
    """Raises ValidationError for the first violation found (depth-first, in document order)."""
    root = schema if root is None else root
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref supported, got {ref!r}")
        target = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        validate(instance, target, root, pointer)
    if "type" in schema and not _TYPES[schema["type"]](instance):
        raise ValidationError(pointer, "type", f"expected {schema['type']}, found {type_name(instance)}",
                              schema["type"])
    if "enum" in schema and instance not in schema["enum"]:
        raise ValidationError(pointer, "enum", f"{instance!r} is not one of {schema['enum']}", schema["enum"])
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        # Unknown keys first: a typo ("colums") is the real problem, not the missing key it was meant to be.
        if schema.get("additionalProperties", True) is False:
            for key in instance:
                if key not in props:
                    raise ValidationError(f"{pointer}/{_escape(key)}", "additionalProperties",
                                          f"unknown key {key!r}", sorted(props))
        for name in schema.get("required", []):
            if name not in instance:
                raise ValidationError(f"{pointer}/{_escape(name)}", "required", f"required key {name!r} is missing",
                                      name)
        for key, value in instance.items():
            if key in props:
                validate(value, props[key], root, f"{pointer}/{_escape(key)}")
    if isinstance(instance, list):
        if "minItems" in schema and len(instance) < schema["minItems"]:
            raise ValidationError(pointer, "minItems", f"needs at least {schema['minItems']} item(s)",
                                  schema["minItems"])
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            raise ValidationError(pointer, "maxItems", f"has {len(instance)} items, more than {schema['maxItems']}",
                                  schema["maxItems"])
        if "items" in schema:
            for i, item in enumerate(instance):
                validate(item, schema["items"], root, f"{pointer}/{i}")
    if isinstance(instance, str):
        if "minLength" in schema and len(instance) < schema["minLength"]:
            raise ValidationError(pointer, "minLength", f"shorter than {schema['minLength']} characters",
                                  schema["minLength"])
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            raise ValidationError(pointer, "maxLength", f"longer than {schema['maxLength']} characters",
                                  schema["maxLength"])
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            raise ValidationError(pointer, "pattern", f"{instance!r} does not match {schema['pattern']}",
                                  schema["pattern"])
    if _TYPES["number"](instance):
        if "minimum" in schema and instance < schema["minimum"]:
            raise ValidationError(pointer, "minimum", f"{instance} is below the minimum {schema['minimum']}",
                                  schema["minimum"])
        if "maximum" in schema and instance > schema["maximum"]:
            raise ValidationError(pointer, "maximum", f"{instance} is above the maximum {schema['maximum']}",
                                  schema["maximum"])
