#  The CMake package psmq, installed under LIBDIR/cmake/psmq:
#    find_package (psmq 0.1 REQUIRED)
#    target_link_libraries (app PRIVATE psmq::psworker)
#  psmq::psworker is the shared worker library, libpsworker, with the
#  folder of its header, ps_worker.h. Its own dependencies (libzmq, czmq,
#  protobuf-c, jansson) are linked into it, not into the program: nothing
#  else to find. Paths are relative to this file, so the package works
#  from any prefix it is installed or copied to.
include ("${CMAKE_CURRENT_LIST_DIR}/psmqTargets.cmake")
