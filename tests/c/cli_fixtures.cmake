# Runs the CLI over every tests/fixtures/*.mlir.  A fixture named bad_*.mlir
# must fail with exit code 2 or 3 and leave no output file; every other one
# must convert.
file(GLOB fixtures ${FIXTURES}/*.mlir)
file(MAKE_DIRECTORY ${OUT})
set(failed 0)
foreach(f ${fixtures})
  get_filename_component(name ${f} NAME_WE)
  set(out ${OUT}/${name}.onnx)
  file(REMOVE ${out})
  execute_process(COMMAND ${CLI} ${f} -o ${out} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  if(name MATCHES "^bad_")
    if(NOT (rc EQUAL 2 OR rc EQUAL 3) OR EXISTS ${out})
      message(SEND_ERROR "${name}: expected a clean failure, got rc=${rc}\n${stderr}")
      set(failed 1)
    endif()
  elseif(NOT rc EQUAL 0 OR NOT EXISTS ${out})
    message(SEND_ERROR "${name}: conversion failed, rc=${rc}\n${stderr}")
    set(failed 1)
  endif()
endforeach()
list(LENGTH fixtures count)
message(STATUS "${count} fixtures checked")
