# add_cbuf_schema(<target> SCHEMA <file> [OUTPUT_DIR <dir>] [NAMESPACE <ns>] [PYTHON_OUT <dir>])
#
# Generates <name>.hpp (and, with PYTHON_OUT, <name>.py) from a cbuf JSON schema at build time and creates the
# INTERFACE library <target>, which links cbuf::runtime and puts the generated header on the include path.
# Regenerates when the schema, a generator source or a template changes - and only then; a regeneration that
# produces identical text leaves the header untouched, so nothing that includes it is rebuilt.
include_guard(GLOBAL)

# Where the generator lives: set by cbufConfig.cmake for an installed package, else the source tree's codegen/.
# Kept as a global property so add_cbuf_schema() works from any directory of the including project.
if(NOT DEFINED CBUF_CODEGEN_DIR)
  set(CBUF_CODEGEN_DIR "${CMAKE_CURRENT_LIST_DIR}/../codegen")
endif()
get_filename_component(_cbuf_codegen_dir "${CBUF_CODEGEN_DIR}" ABSOLUTE)
set_property(GLOBAL PROPERTY CBUF_CODEGEN_DIR "${_cbuf_codegen_dir}")
unset(_cbuf_codegen_dir)

# The Python that runs the generator: CBUF_PYTHON if you set it (-DCBUF_PYTHON=/path/to/python), else the
# active virtual environment's ($VIRTUAL_ENV), else the Python3_EXECUTABLE CMake finds. It needs Jinja2 and jsonschema.
set(CBUF_PYTHON "" CACHE FILEPATH "Python interpreter that runs the cbuf code generator (needs Jinja2 and jsonschema)")

function(_cbuf_find_python)
  get_property(checked GLOBAL PROPERTY CBUF_PYTHON_CHECKED)
  if(checked)
    return()
  endif()
  set(python "${CBUF_PYTHON}")
  set(how "CBUF_PYTHON")
  if(NOT python AND DEFINED ENV{VIRTUAL_ENV} AND EXISTS "$ENV{VIRTUAL_ENV}/bin/python")
    set(python "$ENV{VIRTUAL_ENV}/bin/python")
    set(how "the active virtual environment")
  endif()
  if(NOT python)
    find_package(Python3 3.10 COMPONENTS Interpreter QUIET)
    if(NOT Python3_Interpreter_FOUND)
      message(FATAL_ERROR "cbuf: the code generator needs Python 3.10 or newer with Jinja2 and jsonschema, and CMake "
                          "found no Python. Install one (Debian/Ubuntu: sudo apt install python3 python3-jinja2 "
                          "python3-jsonschema), or name it: -DCBUF_PYTHON=/path/to/python")
    endif()
    set(python "${Python3_EXECUTABLE}")
    set(how "Python3_EXECUTABLE")
  endif()
  execute_process(COMMAND "${python}" -c
    "import importlib.util as u; print(' '.join(m for m in ('jinja2', 'jsonschema') if not u.find_spec(m)))"
    RESULT_VARIABLE rc OUTPUT_VARIABLE missing ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0 OR missing)
    if(NOT rc EQUAL 0)
      set(missing "jinja2 jsonschema")
    endif()
    string(REPLACE " " ", " missing_list "${missing}")
    string(REPLACE "jinja2" "python3-jinja2" debs "${missing}")
    string(REPLACE "jsonschema" "python3-jsonschema" debs "${debs}")
    message(FATAL_ERROR "cbuf: the code generator needs Jinja2 and jsonschema, and ${python} (from ${how}) cannot "
                        "import ${missing_list}. Either install them for that Python - Debian/Ubuntu: sudo apt "
                        "install ${debs} - or use a virtual environment: python3 -m venv .venv && .venv/bin/pip "
                        "install ${missing}, then configure with -DCBUF_PYTHON=$PWD/.venv/bin/python (or from "
                        "inside the activated venv)")
  endif()
  set_property(GLOBAL PROPERTY CBUF_PYTHON_CHECKED TRUE)
  set_property(GLOBAL PROPERTY CBUF_PYTHON_USED "${python}")
endfunction()

function(add_cbuf_schema target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "SCHEMA;OUTPUT_DIR;NAMESPACE;PYTHON_OUT" "")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "add_cbuf_schema(${target}): unknown argument(s) '${ARG_UNPARSED_ARGUMENTS}'; "
                        "accepted: SCHEMA <file> [OUTPUT_DIR <dir>] [NAMESPACE <ns>] [PYTHON_OUT <dir>]")
  endif()
  if(NOT ARG_SCHEMA)
    message(FATAL_ERROR "add_cbuf_schema(${target}): missing SCHEMA <file>: name the JSON column schema to generate from")
  endif()
  get_filename_component(schema "${ARG_SCHEMA}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${schema}")
    message(FATAL_ERROR "add_cbuf_schema(${target}): SCHEMA file '${schema}' does not exist; check the path")
  endif()
  if(NOT ARG_OUTPUT_DIR)
    set(ARG_OUTPUT_DIR "${CMAKE_CURRENT_BINARY_DIR}/cbuf_generated/${target}")
  endif()
  _cbuf_find_python()
  get_property(python GLOBAL PROPERTY CBUF_PYTHON_USED)
  get_property(codegen GLOBAL PROPERTY CBUF_CODEGEN_DIR)

  # Check the schema now, at configure time: a bad schema is reported even in a target nothing builds.
  execute_process(COMMAND ${CMAKE_COMMAND} -E env "PYTHONPATH=${codegen}" "${python}" -m cbuf_codegen --check
                          "${schema}"
                  RESULT_VARIABLE rc ERROR_VARIABLE check_error OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    string(STRIP "${check_error}" check_error)
    message(FATAL_ERROR "add_cbuf_schema(${target}): ${check_error}")
  endif()

  # The output name is the schema's "name". Read it now (and re-read whenever the schema changes); if the file
  # does not parse, fall back to the target name and let the generator report the error at build time.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${schema}")
  file(READ "${schema}" text)
  string(JSON name ERROR_VARIABLE json_error GET "${text}" name)
  if(json_error OR NOT name MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    set(name "${target}")
  endif()

  set(header "${ARG_OUTPUT_DIR}/${name}.hpp")
  set(byproducts "${header}")
  set(args "${schema}" -o "${ARG_OUTPUT_DIR}")
  if(ARG_PYTHON_OUT)
    get_filename_component(pyout "${ARG_PYTHON_OUT}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")
    list(APPEND args --python-out "${pyout}")
    list(APPEND byproducts "${pyout}/${name}.py")
  else()
    list(APPEND args --no-python)
  endif()
  if(ARG_NAMESPACE)
    list(APPEND args --namespace "${ARG_NAMESPACE}")
  endif()

  file(GLOB_RECURSE generator_files CONFIGURE_DEPENDS "${codegen}/cbuf_codegen/*.py"
       "${codegen}/cbuf_codegen/templates/*.j2" "${codegen}/cbuf_codegen/*.json")
  # The stamp is the rule's output; the generated files are byproducts, so Ninja re-checks their timestamps
  # (restat) and an unchanged header does not trigger rebuilds.
  set(stamp "${CMAKE_CURRENT_BINARY_DIR}/cbuf_generated/${target}.stamp")
  add_custom_command(
    OUTPUT "${stamp}"
    BYPRODUCTS ${byproducts}
    COMMAND ${CMAKE_COMMAND} -E env "PYTHONPATH=${codegen}" "${python}" -m cbuf_codegen ${args}
    COMMAND ${CMAKE_COMMAND} -E touch "${stamp}"
    DEPENDS "${schema}" ${generator_files}
    COMMENT "cbuf: generating ${name}.hpp from ${ARG_SCHEMA}"
    VERBATIM)
  add_custom_target(${target}_cbuf_generate DEPENDS "${stamp}")

  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_cbuf_generate)
  target_include_directories(${target} INTERFACE "$<BUILD_INTERFACE:${ARG_OUTPUT_DIR}>")
  target_link_libraries(${target} INTERFACE cbuf::runtime)
  set_target_properties(${target} PROPERTIES CBUF_HEADER "${header}")
endfunction()
