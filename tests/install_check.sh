#!/usr/bin/env bash
#  psmq as a user gets it from `cmake --install`, into a fresh prefix:
#  - every program runs from it, with the prefix's library (its RUNPATH;
#    no LD_LIBRARY_PATH), says the project's version, and has a man page
#    with a SYNOPSIS
#  - libpsworker exports the functions ps_worker.h declares and nothing
#    else, among them every one the Python binding calls
#  - psworker.pc names the prefix's folders (Debian's multiarch layout)
#  - a program built with pkg-config alone, and one built with CMake's
#    find_package (psmq) alone, run against a broker from the prefix
#  usage: tests/install_check.sh BUILD_DIR VERSION LIBDIR
#  (LIBDIR: CMAKE_INSTALL_LIBDIR, e.g. lib/x86_64-linux-gnu)
set -euo pipefail
build=$1
version=$2
libdir=$3
tag=install
tests=$(dirname "$(readlink -f "$0")")
# shellcheck source=consumer/consumers.sh
. "$tests/consumer/consumers.sh"
fail () {
    echo "$tag: FAILED: $*" >&2
    exit 1
}
work=$(mktemp -d)
prefix=$work/prefix
trap 'stop_broker; rm -rf "$work"' EXIT
#  Nothing but the install itself is to find the library
unset LD_LIBRARY_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH

cmake --install "$build" --prefix "$prefix" > "$work/install.log" \
    || fail "cmake --install $build --prefix $prefix"
library=$prefix/$libdir/libpsworker.so.0

for program in psbroker psworker pstap psbench pskeys; do
    [ -x "$prefix/bin/$program" ] || fail "$program is not installed in $prefix/bin"
    #  127: the loader did not find a library
    out=$("$prefix/bin/$program" --version 2>&1) \
        || fail "$prefix/bin/$program --version: exit $?: $out"
    [ "$(head -1 <<< "$out")" = "$program (psmq) $version" ] \
        || fail "$program --version says '$(head -1 <<< "$out")', not '$program (psmq) $version'"
    loaded=$(ldd "$prefix/bin/$program" | awk '$1 == "libpsworker.so.0" {print $3}')
    if [ -n "$loaded" ] && [ "$(realpath "$loaded")" != "$(realpath "$library")" ]; then
        fail "$program loads $loaded, not $library"
    fi
    page=$prefix/share/man/man1/$program.1.gz
    [ -s "$page" ] || fail "no man page $page (help2man: tools/setup installs it)"
    #  help2man makes the SYNOPSIS of --help's lines that begin "Usage:"
    synopsis=$(zcat "$page" | sed -n '/^\.SH SYNOPSIS$/{n;p;q}')
    [ "$synopsis" = ".B $program" ] \
        || fail "$page has no SYNOPSIS naming $program (does $program --help begin 'Usage: $program'?)"
done
echo "$tag: psbroker, psworker, pstap, psbench, pskeys run from $prefix/bin, version $version"

#  The library's exports: what the header declares with PS_WORKER_EXPORT,
#  nothing more and nothing less
exported=$(nm -D --defined-only "$library" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort)
declared=$(sed -n 's/^PS_WORKER_EXPORT [^(]*[ *]\([a-z_0-9]\+\) *(.*/\1/p' \
    "$prefix/include/ps_worker.h" | sort)
[ -n "$declared" ] || fail "no PS_WORKER_EXPORT declaration found in $prefix/include/ps_worker.h"
#  A function declared without the macro would be hidden, and missing
unmarked=$(grep -E '^[a-z_][a-z_0-9 ]*[ *]ps_[a-z_0-9]+ \(' "$prefix/include/ps_worker.h" || true)
[ -z "$unmarked" ] || fail "ps_worker.h declares without PS_WORKER_EXPORT: $unmarked"
if [ "$exported" != "$declared" ]; then
    diff <(echo "$declared") <(echo "$exported") | sed 's/^/  /' >&2 || true
    fail "libpsworker exports (>) other symbols than ps_worker.h declares (<)"
fi
#  Every C function the Python binding declares (free is libc's)
python_lib=$(find "$prefix" -path '*/psmq/_lib.py' | head -1)
[ -n "$python_lib" ] || fail "the Python package is not installed under $prefix"
for name in $(sed -n 's/^_declare("\([a-z_0-9]*\)".*/\1/p' "$python_lib"); do
    [ "$name" = free ] && continue
    grep -qx "$name" <<< "$exported" || fail "the Python binding calls $name, which libpsworker does not export"
done
echo "$tag: libpsworker exports $(wc -l <<< "$exported") symbols, the ones ps_worker.h declares"

export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
for variable in includedir:include libdir:$libdir; do
    value=$(pkg-config --variable="${variable%%:*}" psworker)
    [ "$(realpath -m "$value")" = "$(realpath -m "$prefix/${variable#*:}")" ] \
        || fail "psworker.pc: ${variable%%:*} is $value, not $prefix/${variable#*:}"
done

start_broker "$prefix/bin" "$work"
export CMAKE_PREFIX_PATH=$prefix
run_consumers "$work" "$version" "$prefix/$libdir"
