#  Sourced by tests/install_check.sh and tests/package_check.sh: a broker
#  from an installed psmq, and this folder's client built against that
#  psmq twice, with pkg-config and with CMake's find_package (psmq), each
#  run against the broker. The caller points pkg-config and CMake at the
#  install (PKG_CONFIG_PATH, CMAKE_PREFIX_PATH, or nothing for /usr), sets
#  $tag (the first word of every message) and calls stop_broker on exit.

consumer_dir=$(dirname "${BASH_SOURCE[0]}")
broker_pid=""
endpoint=""

#  start_broker BIN WORK [ARG...]: BIN/psbroker on a free loopback port,
#  with the ARGs; sets $endpoint
start_broker () {
    local bin=$1 work=$2
    shift 2
    "$bin/psbroker" --port 0 --bind 127.0.0.1 --no-tap --quiet "$@" \
        > "$work/broker.out" 2> "$work/broker.err" &
    broker_pid=$!
    #  Up to 20 s: a loaded machine may be slow to start it
    for _ in $(seq 400); do
        endpoint=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$work/broker.out" | head -1 || true)
        [ -n "$endpoint" ] && return 0
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "$tag: FAILED: $bin/psbroker did not start:" >&2
    cat "$work/broker.err" >&2
    return 1
}

stop_broker () {
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
        broker_pid=""
    fi
}

#  run_client WHICH PROGRAM VERSION: the client against $endpoint
run_client () {
    local which=$1 program=$2 version=$3 out
    if ! out=$(timeout 60 "$program" "$endpoint" "$version" 2>&1); then
        echo "$tag: FAILED: the $which client: $out" >&2
        return 1
    fi
    echo "$tag: $which client $out"
}

#  run_consumers WORK VERSION [RPATH]: both clients built and run; RPATH,
#  when given, is linked into the pkg-config one (a staging prefix is not
#  where the loader looks; CMake links its own)
run_consumers () {
    local work=$1 version=$2 rpath=${3:-} flags
    local link=()
    [ -n "$rpath" ] && link=(-Wl,-rpath,"$rpath")
    if ! flags=$(pkg-config --cflags --libs psworker 2>&1); then
        echo "$tag: FAILED: pkg-config --cflags --libs psworker: $flags" >&2
        return 1
    fi
    # shellcheck disable=SC2086 # pkg-config's flags are words
    cc -std=c11 -Wall -Wextra -Werror "$consumer_dir/client.c" $flags "${link[@]}" \
        -o "$work/client-pkgconfig"
    run_client pkg-config "$work/client-pkgconfig" "$version"

    if ! cmake -S "$consumer_dir" -B "$work/consumer" > "$work/consumer.log" 2>&1 \
        || ! cmake --build "$work/consumer" >> "$work/consumer.log" 2>&1; then
        cat "$work/consumer.log" >&2
        echo "$tag: FAILED: the find_package (psmq) client did not build" >&2
        return 1
    fi
    run_client find_package "$work/consumer/client" "$version"
}
