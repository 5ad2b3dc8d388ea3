"""The generator: validation (one invalid fixture per rule), layout, determinism, goldens, CLI behaviour."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cbuf_codegen
from cbuf_codegen import SchemaError, generate, load_model
from cbuf_codegen.model import fnv1a64
from conftest import generated_module

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "schema" / "examples").glob("*.json"))
INVALID = REPO / "tests" / "data" / "schemas" / "invalid"

# fixture -> (JSON pointer, words the message must contain)
INVALID_CASES = {
    "not_json": ("", "not valid JSON"),
    "root_not_object": ("/", "expected object"),
    "capacity_wrong_type": ("/capacity", "expected integer"),
    "columns_wrong_type": ("/columns", "expected array"),
    "unknown_key_typo": ("/colums", "did you mean 'columns'"),
    "unknown_column_key": ("/columns/0/units", "did you mean 'unit'"),
    "missing_name": ("/name", "required key 'name' is missing"),
    "no_columns": ("/columns", "add at least one column"),
    "duplicate_column": ("/columns/1/name", "the same name as column 0"),
    "duplicate_column_case": ("/columns/1/name", "differing only by case"),
    "column_not_identifier": ("/columns/0/name", "not an identifier"),
    "column_cpp_keyword": ("/columns/0/name", "a C++ keyword"),
    "column_python_keyword": ("/columns/0/name", "a Python keyword"),
    "column_reserved_identifier": ("/columns/0/name", "reserved to the C++ implementation"),
    "column_macro": ("/columns/0/name", "a macro"),
    "column_generated_name": ("/columns/0/name", "a name the generated code uses"),
    "schema_name_keyword": ("/name", "a C++ keyword"),
    "schema_name_generated": ("/name", "a name the generated code uses"),
    "schema_name_main": ("/name", "declared at global scope by the C/C++ headers"),
    "schema_name_stat": ("/name", "declared at global scope by the C/C++ headers"),
    "schema_name_typing": ("/name", "a module of Python's standard library"),
    "schema_name_os": ("/name", "a module of Python's standard library"),
    "column_leading_underscore": ("/columns/0/name", "hidden by the Python reader"),
    "column_tool_field": ("/columns/0/name", "the field the cbuf tools add for the row's index"),
    "unknown_type_alias": ("/columns/0/type", "did you mean 'float64'"),
    "unknown_type": ("/columns/0/type", "did you mean 'float32'"),
    "unknown_type_array": ("/columns/0/type", "did you mean 'float64[3]'"),
    "array_length_zero": ("/columns/0/type", "array length 0 is out of range"),
    "array_length_absurd": ("/columns/0/type", "array length 1000000 is out of range"),
    "string_capacity_zero": ("/columns/0/type", "string capacity 0 is out of range"),
    "string_without_capacity": ("/columns/0/type", "lacks its capacity"),
    "capacity_zero": ("/capacity", "below the minimum"),
    "capacity_too_large": ("/capacity", "above the maximum"),
    "row_too_large": ("/columns", "over the 16777216-byte limit"),
}


def test_every_invalid_fixture_has_a_case():
    assert sorted(p.stem for p in INVALID.glob("*.json")) == sorted(INVALID_CASES)


@pytest.mark.parametrize("fixture", sorted(INVALID_CASES))
def test_invalid_schema_names_pointer_and_fix(fixture, tmp_path):
    pointer, words = INVALID_CASES[fixture]
    with pytest.raises(SchemaError) as info:
        generate(INVALID / f"{fixture}.json", tmp_path, tmp_path)
    e = info.value
    assert e.file == f"{fixture}.json"
    assert e.pointer == pointer
    assert words in str(e)
    assert "Fix: " in str(e) and e.fix
    assert not list(tmp_path.iterdir()), "nothing is written for an invalid schema"


def test_cli_failure_is_one_paragraph_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cbuf_codegen", str(INVALID / "unknown_type.json"), "-o", str(tmp_path)],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "codegen")})
    assert r.returncode == 1
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1
    assert "unknown_type.json: /columns/0/type: unknown type 'flaot32'" in r.stderr


def test_cli_success_prints_nothing(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cbuf_codegen", str(EXAMPLES[0]), "-o", str(tmp_path)],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "codegen")})
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".hpp", ".py"]


def test_missing_schema_file(tmp_path):
    with pytest.raises(SchemaError, match="no such file"):
        generate(tmp_path / "nope.json", tmp_path)


def test_layout_natural_alignment_and_padding():
    m = load_model(REPO / "schema" / "examples" / "all_types.json")
    offsets = {c.name: c.offset for c in m.columns}
    assert offsets["flag"] == 0 and offsets["i64"] == 8 and offsets["i8"] == 16 and offsets["i16"] == 18
    assert offsets["i32"] == 20 and offsets["u8"] == 24 and offsets["u16"] == 26
    for c in m.columns:
        assert c.offset % c.align == 0
    assert m.row_size % m.row_align == 0 and m.row_align == 8
    assert m.row_size >= m.columns[-1].offset + m.columns[-1].size


@pytest.mark.parametrize("schema", EXAMPLES, ids=lambda p: p.stem)
def test_numpy_dtype_uses_the_model_numbers(schema, tmp_path):
    mod = generated_module(schema, tmp_path)
    m = load_model(schema)
    assert mod.DTYPE.itemsize == m.row_size == mod.ROW_SIZE
    for c in m.columns:
        assert mod.DTYPE.fields[c.name][1] == c.offset
        assert mod.DTYPE.fields[c.name][0].itemsize == c.size
    assert mod.FINGERPRINT == m.fingerprint
    assert json.loads(mod.SCHEMA_JSON)["row_size"] == m.row_size


def test_fingerprint_is_fnv1a_of_the_documented_layout_string():
    m = load_model(REPO / "schema" / "examples" / "sensors.json")
    assert m.layout_string.startswith(f"cbuf-layout-v1;row_size={m.row_size};t:timestamp_ns@0;seq:uint64@8;")
    assert m.fingerprint == fnv1a64(m.layout_string.encode())
    assert fnv1a64(b"") == 0xcbf29ce484222325 and fnv1a64(b"a") == 0xaf63dc4c8601ec8c  # FNV-1a test vectors


def test_output_is_byte_identical_across_runs_and_working_directories(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out, cwd in ((a, REPO), (b, tmp_path)):
        subprocess.run([sys.executable, "-m", "cbuf_codegen", str(EXAMPLES[0]), "-o", str(out)], cwd=cwd, check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO / "codegen")})
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes()
        text = (a / n).read_text()
        assert str(REPO) not in text and str(tmp_path) not in text  # no absolute paths
        assert "DO NOT EDIT" in text and cbuf_codegen.__version__ in text


def test_files_are_rewritten_only_when_their_content_changes(tmp_path):
    assert len(generate(EXAMPLES[0], tmp_path, tmp_path)) == 2
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert generate(EXAMPLES[0], tmp_path, tmp_path) == []
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamp


@pytest.mark.parametrize("schema", EXAMPLES, ids=lambda p: p.stem)
def test_goldens_are_up_to_date(schema, tmp_path):
    """generated/ holds the checked-in output; refresh it with ./dev.sh goldens."""
    m = load_model(schema)
    generate(schema, tmp_path, tmp_path, idl_out=tmp_path)
    golden = REPO / "generated" / m.name
    for p in tmp_path.iterdir():
        assert (golden / p.name).read_bytes() == p.read_bytes(), f"{golden / p.name} is stale: run ./dev.sh goldens"


def test_every_example_schema_has_its_goldens_and_nothing_else_is_there():
    """generated/<name>/ is the output for schema/examples/<name>.json: one folder per example, no orphans."""
    assert sorted(p.name for p in (REPO / "generated").iterdir()) == sorted(p.stem for p in EXAMPLES)
    for schema in EXAMPLES:
        assert load_model(schema).name == schema.stem, f"{schema}: its \"name\" must match the file name"


def test_examples_cover_every_type():
    from cbuf_codegen.types import SCALARS
    seen = set()
    for schema in EXAMPLES:
        for c in load_model(schema).columns:
            seen.add(c.base + ("[]" if c.is_array else ""))
    for t in SCALARS:
        assert t in seen and t + "[]" in seen, t
    assert "string" in seen


def test_json_schema_is_valid_2020_12_and_its_type_rule_comes_from_the_type_table(tmp_path, monkeypatch):
    """The editor-facing JSON Schema and the generator's type table must agree; a table change that is not
    written into the file stops the generator with a line saying what to write."""
    import jsonschema
    from cbuf_codegen import validate as v
    schema = json.loads(v.SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$defs"]["column"]["properties"]["type"]["pattern"] == v.type_pattern()
    from cbuf_codegen.types import SCALARS
    assert all(t in v.type_pattern() for t in SCALARS)
    schema["$defs"]["column"]["properties"]["type"]["pattern"] = "^(int8)$"
    stale = tmp_path / "cbuf.schema.json"
    stale.write_text(json.dumps(schema))
    monkeypatch.setattr(v, "SCHEMA_PATH", stale)
    v.validator.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="write the latter into the file"):
            v.validator()
    finally:
        v.validator.cache_clear()


def test_cpp_globals_list_is_current_and_each_name_really_collides(tmp_path):
    """cpp_globals.txt (refused schema names) holds every global name the runtime's headers declare today, and
    a namespace of such a name does not compile while one of an accepted name does."""
    import shutil
    if not shutil.which("c++"):
        pytest.skip("no C++ compiler")
    sys.path.insert(0, str(REPO / "codegen" / "tools"))
    from cpp_globals import global_names
    from cbuf_codegen.names import cpp_globals
    missing = sorted(set(global_names()) - cpp_globals())
    assert not missing, f"refresh codegen/cbuf_codegen/cpp_globals.txt (./dev.sh goldens): {missing[:20]}"
    sample = ["main", "stat", "time", "signal", "read", "poll", "pid_t", "timespec"]
    assert all(n in cpp_globals() for n in sample)
    src = tmp_path / "t.cpp"
    src.write_text("#include <cbuf/cbuf.hpp>\n" + "".join(f"namespace {n} {{ int in_{n}; }}\n" for n in sample) +
                   "namespace robot_state { int in_robot_state; }\n" "int main() { return 0; }\n")
    r = subprocess.run(["c++", "-std=c++20", "-fsyntax-only", "-fmax-errors=0", "-I", str(REPO / "runtime" / "include"),
                        str(src)], capture_output=True, text=True)
    bad_lines = {int(m) for m in __import__("re").findall(r"t\.cpp:(\d+):\d+: error", r.stderr)}
    # Every sample fails (main where the program defines main()); robot_state compiles.
    assert bad_lines == set(range(3, 2 + len(sample))) | {3 + len(sample)}, r.stderr[-2000:]


def test_the_generator_limits_are_the_runtimes():
    """The generator runs without the runtime's module (at build time), so it keeps its own copy of the limits;
    this checks the copy against the owner."""
    core = pytest.importorskip("cbuf._core")
    from cbuf_codegen.types import MAX_CAPACITY, MAX_ROW_SIZE, SCALARS
    assert (MAX_ROW_SIZE, MAX_CAPACITY) == (core.MAX_ROW_SIZE, core.MAX_CAPACITY)
    # the JSON Schema users' editors check schemas with says the same
    import json
    import cbuf_codegen
    spec = json.loads(Path(cbuf_codegen.__file__).with_name("cbuf.schema.json").read_text())
    assert spec["properties"]["capacity"]["maximum"] == core.MAX_CAPACITY
    # and its type table is the runtime's: the same names, sizes and NumPy formats
    import json
    cols = [{"name": f"c{i}", "type": t, "offset": 8 * i} for i, t in enumerate(SCALARS)]
    _, checked = core.check_schema(json.dumps({"name": "x", "columns": cols}), 8 * len(cols), "t")
    assert [(c[1], c[2]) for c in checked] == [(t, s.numpy) for t, s in SCALARS.items()]
