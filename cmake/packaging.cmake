#  What `cmake --install` puts where (included at the end of
#  CMakeLists.txt, once every target exists):
#  - the programs (bin), each with a RUNPATH to the worker library relative
#    to itself ($ORIGIN/../lib/x86_64-linux-gnu), so they run from any
#    prefix without ldconfig or LD_LIBRARY_PATH
#  - libpsworker (exporting ps_worker.h's API only), ps_worker.h,
#    psworker.pc for pkg-config (written for the prefix installed to), the
#    CMake package psmq (find_package (psmq) gives psmq::psworker; its
#    paths are relative to where it is installed)
#  - a man page per program, made at build time by help2man from its
#    --help and --version (build outputs, never committed)
#  - the licence, as Debian's share/doc/psmq/copyright
#  The tests install and use all of it: tests/install_check.sh (a staging
#  prefix: ctest install).

set (PSMQ_PROGRAMS psbroker psworker pstap psbench pskeys)
file (RELATIVE_PATH PSMQ_BIN_TO_LIB ${CMAKE_INSTALL_FULL_BINDIR} ${CMAKE_INSTALL_FULL_LIBDIR})
foreach (program ${PSMQ_PROGRAMS})
    set_target_properties (${program} PROPERTIES INSTALL_RPATH "\$ORIGIN/${PSMQ_BIN_TO_LIB}")
endforeach ()

#  The library, its header, and the CMake package's targets file
install (TARGETS psworker_lib EXPORT psmqTargets
         LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
         PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set (PSMQ_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/psmq)
install (EXPORT psmqTargets NAMESPACE psmq:: DESTINATION ${PSMQ_CMAKE_DIR})
include (CMakePackageConfigHelpers)
#  0.x: a minor release may change the API
write_basic_package_version_file (${CMAKE_CURRENT_BINARY_DIR}/psmqConfigVersion.cmake
                                  COMPATIBILITY SameMinorVersion)
install (FILES cmake/psmqConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/psmqConfigVersion.cmake
         DESTINATION ${PSMQ_CMAKE_DIR})

#  pkg-config: written at install time, for the prefix installed to
configure_file (cmake/install_pkgconfig.cmake.in
                ${CMAKE_CURRENT_BINARY_DIR}/install_pkgconfig.cmake @ONLY)
install (SCRIPT ${CMAKE_CURRENT_BINARY_DIR}/install_pkgconfig.cmake)

install (FILES LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)

#  Man pages: help2man runs each program (a sanitizer build's too, whose
#  leak report at exit must not fail the build) and gzip packs the page as
#  Debian's are (-n: no time stamp, so a rebuild makes the same file)
find_program (PSMQ_HELP2MAN help2man)
set (PSMQ_MAN_NAME_psbroker "the psmq parameter server: parameters, clocks, optimizers")
set (PSMQ_MAN_NAME_psworker "train a classifier data-parallel through a psbroker")
set (PSMQ_MAN_NAME_pstap "watch a psbroker through its tap, live or recorded")
set (PSMQ_MAN_NAME_psbench "measure psmq: push, pull, clocks, aggregation, the tap")
set (PSMQ_MAN_NAME_pskeys "make and inspect CURVE key pairs for psmq")
set (PSMQ_MAN_PAGES)
if (PSMQ_HELP2MAN)
    file (MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/man)
    foreach (program ${PSMQ_PROGRAMS})
        set (page ${CMAKE_CURRENT_BINARY_DIR}/man/${program}.1)
        add_custom_command (
            OUTPUT ${page}.gz
            COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0
                    ${PSMQ_HELP2MAN} --no-info --section 1 --name ${PSMQ_MAN_NAME_${program}}
                    --output ${page} $<TARGET_FILE:${program}>
            COMMAND gzip -9nf ${page}
            DEPENDS ${program}
            COMMENT "help2man ${program}"
            VERBATIM)
        list (APPEND PSMQ_MAN_PAGES ${page}.gz)
    endforeach ()
    add_custom_target (psmq_man ALL DEPENDS ${PSMQ_MAN_PAGES})
    install (FILES ${PSMQ_MAN_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else ()
    message (STATUS "help2man not found: no man pages (tools/setup installs it)")
endif ()

#  Everything the install rules take, for a build of only those
#  (tools/demo builds it before cmake --install)
add_custom_target (psmq_installed)
add_dependencies (psmq_installed psworker_lib ${PSMQ_PROGRAMS})
if (TARGET psmq_man)
    add_dependencies (psmq_installed psmq_man)
endif ()
