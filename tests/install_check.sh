#!/usr/bin/env bash
#  The worker library as a user gets it: install the build into a fresh
#  prefix, compile a program with pkg-config alone, run it against a
#  broker started from the same prefix.
set -euo pipefail
build=$1
prefix=$(mktemp -d)
trap 'kill "$broker" 2>/dev/null || true; rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > /dev/null
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cat > "$prefix/client.c" <<'C'
#include <ps_worker.h>
#include <stdio.h>
int main (int argc, char **argv)
{
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = argv[1];
    ps_worker_t *worker = ps_worker_connect (&options, NULL);
    if (!worker)
        return 1;
    float value[2] = {1, 2};
    ps_tensor_t tensor = {"v", value, 2};
    int status = ps_worker_init (worker, "v", 2, value, NULL);
    if (!status)
        status = ps_worker_pull (worker, &tensor, 1);
    printf ("pulled %g %g: %s\n", value[0], value[1], ps_strerror (status));
    ps_worker_close (&worker);
    return status == PS_OK && value[1] == 2 ? 0 : 1;
}
C
cc "$prefix/client.c" $(pkg-config --cflags --libs psworker) -Wl,-rpath,"$prefix/lib" \
    -o "$prefix/client"
"$prefix/bin/psbroker" --port 0 --bind 127.0.0.1 --no-tap --quiet > "$prefix/broker.out" &
broker=$!
#  Up to 20 s: a loaded machine may be slow to start it
for _ in $(seq 400); do grep -q tcp:// "$prefix/broker.out" && break; sleep 0.05; done
endpoint=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$prefix/broker.out" | head -1)
"$prefix/client" "$endpoint"
