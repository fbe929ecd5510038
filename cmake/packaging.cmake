#  What `cmake --install` puts where, and the Debian package made of it
#  (included at the end of CMakeLists.txt, once every target exists):
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
#  - `cpack -G DEB` in the build directory: psmq_VERSION_ARCH.deb, for the
#    prefix /usr, its Depends found by dpkg-shlibdeps (Debian's dpkg-dev)
#    but libmicrohttpd's, which psbroker loads with dlopen
#  The tests install and use all of it: tests/install_check.sh (a staging
#  prefix: ctest install) and tests/package_check.sh (the .deb, dpkg -i:
#  ctest package).

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

#  Man pages: help2man runs each program (an ASan build's too, whose leak
#  report at exit must not fail the build; not a TSan build's, which some
#  kernels' address layouts stop at start) and gzip packs the page as
#  Debian's are (-n: no time stamp, so a rebuild makes the same file)
find_program (PSMQ_HELP2MAN help2man)
set (PSMQ_MAN_NAME_psbroker "the psmq parameter server: parameters, clocks, optimizers")
set (PSMQ_MAN_NAME_psworker "train a classifier data-parallel through a psbroker")
set (PSMQ_MAN_NAME_pstap "watch a psbroker through its tap, live or recorded")
set (PSMQ_MAN_NAME_psbench "measure psmq: push, pull, clocks, aggregation, the tap")
set (PSMQ_MAN_NAME_pskeys "make and inspect CURVE key pairs for psmq")
set (PSMQ_MAN_PAGES)
if (PSMQ_HELP2MAN AND NOT PSMQ_TSAN)
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
elseif (PSMQ_TSAN)
    message (STATUS "ThreadSanitizer build: no man pages")
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

#  The Debian package: the install above under /usr
set (CPACK_GENERATOR DEB)
set (CPACK_PACKAGE_NAME psmq)
set (CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set (CPACK_PACKAGE_VENDOR "the psmq authors")
set (CPACK_PACKAGE_CONTACT "the psmq authors")
set (CPACK_PACKAGE_DESCRIPTION_SUMMARY
     "parameter server for data-parallel machine learning, on ZeroMQ")
set (CPACK_DEBIAN_PACKAGE_DESCRIPTION
     "psbroker owns the parameters (named float32 tensors) and the vector clock
of every worker; workers on any number of machines push gradients, pull
parameters and advance their clocks, with BSP, SSP or ASP consistency.
This package holds psbroker, psworker, pstap, psbench and pskeys, the worker
library libpsworker with its header, pkg-config file and CMake package, and
the psmq Python package (ctypes over libpsworker).")
set (CPACK_RESOURCE_FILE_LICENSE ${CMAKE_CURRENT_SOURCE_DIR}/LICENSE)
#  cmake --install runs with the prefix /usr (CPACK_INSTALL_PREFIX, with
#  DESTDIR set) and DESTDIR at the staging folder, so what it writes into
#  files (the Python package's _install.py) names /usr, not the staging one
set (CPACK_PACKAGING_INSTALL_PREFIX /usr)
set (CPACK_INSTALL_PREFIX /usr)
set (CPACK_SET_DESTDIR ON)
set (CPACK_STRIP_FILES ON)
set (CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set (CPACK_DEBIAN_PACKAGE_SECTION science)
#  Depends: every library the programs and libpsworker link, as Debian
#  packages (libzmq5, libczmq4, libprotobuf-c1, libjansson4, ...), found by
#  dpkg-shlibdeps; a shlibs file and the ldconfig trigger for libpsworker
set (CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
#  and, named here, libmicrohttpd's (libmicrohttpd12), which dpkg-shlibdeps
#  cannot see: psbroker loads it with dlopen for --metrics (CMakeLists.txt),
#  at least the version whose header it was built with. CPack appends what
#  dpkg-shlibdeps finds
set (CPACK_DEBIAN_PACKAGE_DEPENDS "${PSMQ_MICROHTTPD_PACKAGE} (>= ${MICROHTTPD_VERSION})")
set (CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
#  cmake/debian: the ldconfig trigger (CPack writes the shlibs file, not
#  the trigger), and a prerm that removes the byte code Python wrote beside
#  the package, which dpkg -r would leave behind
set (CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_SOURCE_DIR}/cmake/debian/triggers
     ${CMAKE_CURRENT_SOURCE_DIR}/cmake/debian/prerm)
set (CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
#  The Python package: import psmq needs python3 and numpy
set (CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3, python3-numpy")
include (CPack)

if (PSMQ_TESTS AND NOT PSMQ_ASAN AND NOT PSMQ_TSAN)
    #  The .deb made, installed with dpkg on this machine (as root; CI's is
    #  a throwaway one), a job run with its programs, consumers built
    #  against it, then removed. Not in sanitizer builds: their programs
    #  need the sanitizer's runtime first
    add_test (NAME package COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tests/package_check.sh
              ${CMAKE_CURRENT_BINARY_DIR} ${PROJECT_VERSION} ${CMAKE_INSTALL_LIBDIR})
    set_tests_properties (package PROPERTIES TIMEOUT 120
        PASS_REGULAR_EXPRESSION "package: psmq ${PROJECT_VERSION} installed, used and removed")
endif ()
