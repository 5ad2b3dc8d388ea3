# cbuf_instr: fixed workloads whose instructions per row bench/instructions.py counts under callgrind. Built
# the same way wherever it is built (bench/ and the tests), so that the counts compare with the recorded ones.
# (In cmake/, not bench/: the tests include it too, and tests/ should not reach into bench/.)
add_executable(cbuf_instr ${PROJECT_SOURCE_DIR}/bench/instr.cpp)
target_link_libraries(cbuf_instr PRIVATE cbuf::runtime)
target_compile_options(cbuf_instr PRIVATE -O2 -Wall -Wextra)
target_compile_definitions(cbuf_instr PRIVATE CBUF_INSTR_FLAGS="-O2")
