/*  =========================================================================
    client - a program of psmq's users, built against an installed psmq

    tests/install_check.sh and tests/package_check.sh compile it with
    pkg-config (psworker.pc) and with CMake (find_package (psmq), this
    folder's CMakeLists.txt), from the installed header and library alone.
    It creates a key, pulls it back and checks the library's version.
    usage: client ENDPOINT VERSION; prints "pulled 1 2: success (libpsworker
    VERSION)"; exit 0 when all went as it should.
    ========================================================================= */

#include <ps_worker.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int
main (int argc, char **argv)
{
    if (argc != 3) {
        fprintf (stderr, "usage: client ENDPOINT VERSION\n");
        return 2;
    }
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = argv[1];
    int status = PS_OK;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    if (!worker) {
        printf ("connect: %s\n", ps_strerror (status));
        return 1;
    }
    float value[2] = {1, 2};
    ps_tensor_t tensor = {"v", value, 2};
    status = ps_worker_init (worker, "v", 2, value, NULL);
    value[0] = value[1] = 0;
    if (status == PS_OK)
        status = ps_worker_pull (worker, &tensor, 1);
    printf ("pulled %g %g: %s (libpsworker %s)\n", value[0], value[1], ps_strerror (status),
            ps_worker_version ());
    ps_worker_close (&worker);
    bool right = status == PS_OK && value[0] == 1 && value[1] == 2;
    return right && strcmp (ps_worker_version (), argv[2]) == 0 ? 0 : 1;
}
