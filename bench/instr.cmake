# cbuf_instr: fixed workloads whose instructions per row bench/instructions.py counts under callgrind. Built
# the same way wherever it is built (bench/ and the tests), so that the counts compare with the recorded ones.
add_executable(cbuf_instr ${CMAKE_CURRENT_LIST_DIR}/instr.cpp)
target_link_libraries(cbuf_instr PRIVATE cbuf::runtime)
target_compile_options(cbuf_instr PRIVATE -O2 -Wall -Wextra)
target_compile_definitions(cbuf_instr PRIVATE CBUF_INSTR_FLAGS="-O2")
