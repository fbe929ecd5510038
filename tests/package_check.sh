#!/usr/bin/env bash
#  The Debian package as a user gets it: cpack makes it from this build,
#  dpkg installs it on this machine, and it is used from /usr as a user
#  would, with no path given anywhere (but /usr, when a psmq is installed
#  in /usr/local too, as tools/demo does):
#  - its Depends names the Debian package of every library its programs
#    and libpsworker link (dpkg-shlibdeps found them), and libmicrohttpd12,
#    which psbroker loads (dlopen) to serve --metrics
#  - every program runs from /usr/bin and says the version; man pages,
#    header, pkg-config file, CMake package and licence are where Debian
#    keeps them
#  - programs built with pkg-config and with find_package (psmq) run
#    against the installed psbroker, which then serves /metrics
#  - Debian's python3 imports psmq from / and loads the installed library
#  - tools/demo runs a short job (a broker, two workers, one epoch) with
#    the installed programs
#  Then dpkg removes it (--purge), and nothing of it may be left: not the
#  byte code python3 wrote beside the package (the package's prerm).
#  Installing takes root: CI runs the tests as root on a machine thrown
#  away after. Without root this test fails, saying so; it also refuses
#  to touch a psmq that was installed before it started.
#  usage: tests/package_check.sh BUILD_DIR VERSION LIBDIR
#  (LIBDIR: CMAKE_INSTALL_LIBDIR, e.g. lib/x86_64-linux-gnu)
set -euo pipefail
build=$1
version=$2
libdir=$3
tag=package
tests=$(dirname "$(readlink -f "$0")")
source_dir=$(dirname "$tests")
# shellcheck source=consumer/consumers.sh
. "$tests/consumer/consumers.sh"
fail () {
    echo "$tag: FAILED: $*" >&2
    exit 1
}
if [ "$(id -u)" -ne 0 ]; then
    fail "installing the .deb (dpkg -i) takes root: run ctest as root, as CI does," \
         "or leave this test out (ctest -E '^package\$')"
fi
if dpkg-query -W -f='${Status}' psmq 2>/dev/null | grep -q "ok installed"; then
    fail "a psmq package is installed already (dpkg -s psmq): this test would replace" \
         "and then remove it; remove it first (dpkg -r psmq)"
fi
work=$(mktemp -d)
installed=false
#  From the first dpkg -i on, whatever dpkg has of psmq goes (a failed
#  install may leave it unpacked); none was there before
cleanup () {
    stop_broker
    if $installed && dpkg-query -W psmq > /dev/null 2>&1; then
        dpkg --purge psmq > /dev/null 2>&1 || echo "$tag: dpkg --purge psmq failed: remove it by hand" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
unset LD_LIBRARY_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH PYTHONPATH PYTHONDONTWRITEBYTECODE
#  A psmq that tools/demo installed into /usr/local (the Quick start's
#  first command, tools/check its second) comes first for pkg-config,
#  CMake's find_package and the loader: then they are pointed at /usr,
#  so that what runs below is the package's
if [ -e "/usr/local/$libdir/libpsworker.so.0" ] || [ -e "/usr/local/$libdir/pkgconfig/psworker.pc" ]; then
    export PKG_CONFIG_LIBDIR=/usr/$libdir/pkgconfig:/usr/lib/pkgconfig:/usr/share/pkgconfig
    export CMAKE_PREFIX_PATH=/usr LD_LIBRARY_PATH=/usr/$libdir
    echo "$tag: a psmq is installed in /usr/local too: pkg-config, CMake and the loader look in /usr"
fi

cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/cpack" > "$work/cpack.log" 2>&1 \
    || { cat "$work/cpack.log" >&2; fail "cpack did not make the package"; }
debs=("$work"/cpack/*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "cpack made ${debs[*]}, not one .deb"
deb=${debs[0]}
echo "$tag: cpack made $(basename "$deb")"

#  Depends: for every library a program or libpsworker needs (but
#  libpsworker itself), the Debian package that holds it, or one that
#  depends on it (libopenblas0 for the libopenblas0-pthread that holds
#  libopenblas.so.0)
depends=$(dpkg-deb -f "$deb" Depends)
dpkg-deb -x "$deb" "$work/root"
elves=("$work"/root/usr/bin/ps* "$work/root/usr/$libdir"/libpsworker.so.0.*)
[ ${#elves[@]} -eq 6 ] && [ -f "${elves[0]}" ] \
    || fail "the package's programs and library are not in /usr/bin and /usr/$libdir"
needed=$(for file in "${elves[@]}"; do
    readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
done | sort -u | grep -vx libpsworker.so.0)
#  Where the loader finds each, then one dpkg -S for all (it is slow):
#  Debian 12 lists some libraries under /lib, some under /usr/lib
declare -A path_of owner_of
libraries=$(ldconfig -p)
candidates=()
for name in $needed; do
    path=$(awk -v name="$name" -v arch="/${libdir##*/}/" \
        '$1 == name && index($NF, arch) {print $NF; exit}' <<< "$libraries")
    [ -n "$path" ] || fail "the loader does not know $name, which the package's programs need"
    path_of[$name]=$path
    candidates+=("$(readlink -f "$path")" "$path" "${path#/usr}")
done
while read -r package file; do
    owner_of[$file]=${package%%:*}
done < <(dpkg -S "${candidates[@]}" 2>/dev/null | sed 's/: / /')
named () {
    grep -qE "(^|[ ,|])$1( |,|:|$)"
}
covered () {
    local owner=$1 package
    named "$owner" <<< "$depends" && return 0
    for package in $(sed 's/([^)]*)//g; s/[,|]/ /g' <<< "$depends"); do
        dpkg-query -W -f='${Depends}' "$package" 2>/dev/null | named "$owner" && return 0
    done
    return 1
}
for name in $needed; do
    path=${path_of[$name]}
    owner=""
    for candidate in "$(readlink -f "$path")" "$path" "${path#/usr}"; do
        owner=${owner_of[$candidate]:-}
        [ -n "$owner" ] && break
    done
    [ -n "$owner" ] || fail "no Debian package on this machine holds $path ($name)"
    covered "$owner" || fail "the package needs $name from $owner, which Depends does not name: $depends"
done
#  Not linked, so not found above: psbroker --metrics loads it
named libmicrohttpd12 <<< "$depends" \
    || fail "Depends does not name libmicrohttpd12 (psbroker --metrics loads it): $depends"
echo "$tag: Depends: $depends"

#  dpkg waits for nobody: another apt or dpkg holding the lock is waited
#  for here, up to 60 s
installed=true
for attempt in $(seq 60); do
    if out=$(dpkg -i "$deb" 2>&1); then
        break
    fi
    grep -q "lock" <<< "$out" && [ "$attempt" -lt 60 ] || fail "dpkg -i $deb: $out"
    sleep 1
done
files=$(dpkg -L psmq)
for path in /usr/bin/psbroker /usr/bin/psworker /usr/bin/pstap /usr/bin/psbench /usr/bin/pskeys \
    "/usr/$libdir/libpsworker.so.0" /usr/include/ps_worker.h "/usr/$libdir/pkgconfig/psworker.pc" \
    "/usr/$libdir/cmake/psmq/psmqConfig.cmake" /usr/share/man/man1/psbroker.1.gz \
    /usr/share/man/man1/psworker.1.gz /usr/share/man/man1/pstap.1.gz \
    /usr/share/man/man1/psbench.1.gz /usr/share/man/man1/pskeys.1.gz \
    /usr/share/doc/psmq/copyright /usr/lib/python3/dist-packages/psmq/__init__.py; do
    grep -qx "$path" <<< "$files" || fail "the package does not install $path"
done
for program in psbroker psworker pstap psbench pskeys; do
    out=$("/usr/bin/$program" --version 2>&1) || fail "/usr/bin/$program --version: exit $?: $out"
    [ "$(head -1 <<< "$out")" = "$program (psmq) $version" ] \
        || fail "/usr/bin/$program --version says '$(head -1 <<< "$out")'"
done
echo "$tag: dpkg -i installed it; its programs run from /usr/bin"

[ "$(pkg-config --variable=includedir psworker)" = /usr/include ] \
    && [ "$(pkg-config --variable=libdir psworker)" = "/usr/$libdir" ] \
    || fail "psworker.pc: includedir $(pkg-config --variable=includedir psworker), libdir" \
            "$(pkg-config --variable=libdir psworker), not /usr/include and /usr/$libdir"

#  Programs of its users, found by pkg-config and CMake without a path
start_broker /usr/bin "$work" --metrics 127.0.0.1:0
run_consumers "$work" "$version"
#  and its metrics, from libmicrohttpd loaded at start (the line comes
#  with the endpoint's: one flush)
url=$(grep -o 'psbroker metrics on http://[^ ]*' "$work/broker.out" | cut -d' ' -f4 || true)
[ -n "$url" ] || fail "/usr/bin/psbroker --metrics 127.0.0.1:0 printed no metrics URL:" \
    "$(cat "$work/broker.out" "$work/broker.err")"
out=$(/usr/bin/python3 -c "import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    print(response.status, response.read().decode())" "$url" 2>&1) \
    || fail "GET $url: $out"
grep -q '^200 ' <<< "$out" && grep -q '^# TYPE psmq_worker_up gauge' <<< "$out" \
    || fail "GET $url did not answer the metrics: $out"
echo "$tag: /usr/bin/psbroker serves $url"
stop_broker

#  Python: from /, the package in Debian's dist-packages loads the
#  installed library (a psmq installed into /usr/local would come first on
#  python3's path: this one is named first), and import psmq works at all.
#  As root, python3 writes byte code beside the package: prerm removes it
cd /
out=$(/usr/bin/python3 -c "import sys; sys.path.insert(0, '/usr/lib/python3/dist-packages')
import psmq; print(psmq.library_path, psmq.__version__)" 2>&1) \
    || fail "the package's psmq does not import: $out"
[ "$out" = "/usr/$libdir/libpsworker.so.0 $version" ] \
    || fail "the package's psmq loads '$out', not /usr/$libdir/libpsworker.so.0 $version"
/usr/bin/python3 -c 'import psmq' || fail "python3 -c 'import psmq' fails in /"
echo "$tag: python3 imports psmq from /, with /usr/$libdir/libpsworker.so.0"

out=$(timeout 90 "$source_dir/tools/demo" --no-setup --bin /usr/bin --data synthetic --epochs 1 \
    --workers 2 2>&1) || { echo "$out" >&2; fail "tools/demo --bin /usr/bin failed"; }
grep "demo: final test accuracy" <<< "$out" || fail "tools/demo did not finish: $out"

dpkg --purge psmq > /dev/null || fail "dpkg --purge psmq"
installed=false
for path in /usr/bin/psbroker "/usr/$libdir/libpsworker.so.0" /usr/lib/python3/dist-packages/psmq; do
    [ ! -e "$path" ] || fail "$path is left after dpkg --purge psmq"
done
! dpkg-query -W psmq > /dev/null 2>&1 || fail "dpkg still lists psmq after dpkg --purge psmq"
echo "$tag: psmq $version installed, used and removed"
