# Runs the CLI over every tests/fixtures/*.mlir, twice: as it is, and with
# --local-functions=1 (every called function an ONNX local function, where
# its body can be lowered on its own).  A fixture named bad_*.mlir must fail
# with exit code 2 or 3, say where (FILE:LINE:COL: error: ...) and leave no
# output file; every other one must convert.  No run may print a sanitizer
# report.
#
# With -DVALGRIND=/path/to/valgrind each run goes through Valgrind's memcheck
# (errors or definite/indirect leaks fail the test).
file(GLOB fixtures ${FIXTURES}/*.mlir)
file(MAKE_DIRECTORY ${OUT})
set(wrapper)
if(VALGRIND)
  set(wrapper ${VALGRIND} --quiet --error-exitcode=99 --leak-check=full
      --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect)
endif()
set(failed 0)
foreach(variant default local)
foreach(f ${fixtures})
  get_filename_component(name ${f} NAME_WE)
  set(out ${OUT}/${name}.onnx)
  set(extra)
  if(variant STREQUAL "local")
    set(extra --local-functions=1)
    set(out ${OUT}/${name}.local.onnx)
  endif()
  file(REMOVE ${out})
  execute_process(COMMAND ${wrapper} ${CLI} ${f} -o ${out} -q ${extra} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  if(stderr MATCHES "Sanitizer|runtime error:|==[0-9]+==")
    message(SEND_ERROR "${name} (${variant}): sanitizer or Valgrind report, rc=${rc}\n${stderr}")
    set(failed 1)
  elseif(name MATCHES "^bad_")
    string(FIND "${stderr}" "${f}:" at)
    if(NOT (rc EQUAL 2 OR rc EQUAL 3) OR EXISTS ${out} OR NOT at EQUAL 0 OR
       NOT stderr MATCHES "^[^\n]*:[0-9]+:[0-9]+: error: ")
      message(SEND_ERROR "${name} (${variant}): expected a clean, positioned failure, got rc=${rc}\n${stderr}")
      set(failed 1)
    endif()
  elseif(NOT rc EQUAL 0 OR NOT EXISTS ${out})
    message(SEND_ERROR "${name} (${variant}): conversion failed, rc=${rc}\n${stderr}")
    set(failed 1)
  endif()
endforeach()
endforeach()
list(LENGTH fixtures count)
message(STATUS "${count} fixtures checked")
