/*  =========================================================================
    pstap_info - the broker's INFO reply, read with jansson

    jansson parses the reply (any JSON value is taken: a reader falls back
    on whatever it does not find) and a short walker follows dotted paths
    through it, because jansson has no path lookup and every view would
    otherwise chain json_object_get calls with a NULL check between each.
    Numbers are read the way the views need them: an integer where one is
    expected even when a broker writes it with a fraction.
    ========================================================================= */

#include "pstap_info.h"
#include "ps_limits.h"
#include "ps_worker.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *
pstap_info_parse (const char *text, size_t size, ps_problem_t *problem)
{
    json_error_t error;
    json_t *info = json_loadb (text, size, JSON_DECODE_ANY, &error);
    if (!info)
        ps_problem_set (problem, 0, "line %d, column %d: %s", error.line, error.column, error.text);
    return info;
}

//  The keys of --curve-secret and --broker-key (or of PSMQ_CURVE_SECRET
//  and PSMQ_BROKER_KEY), as the files named them (for INFO, through the
//  library) and as Z85 text (for the SUB sockets); set once at start, then
//  only read
static struct {
    const char *secret_file;
    const char *broker_key;
    char server_key[41];
    char public_key[41];
    char secret_key[41];
} s_keys;

int
pstap_info_set_keys (const char *command, const char *curve_secret, const char *broker_key,
                     bool from_environment)
{
    if (!curve_secret || !broker_key)
        return 0;
    const char *secret_name = from_environment ? "PSMQ_CURVE_SECRET" : "--curve-secret";
    const char *key_name = from_environment ? "PSMQ_BROKER_KEY" : "--broker-key";
    static const char zeros[] = "0000000000000000000000000000000000000000";
    zcert_t *ours = zcert_load (curve_secret);
    if (!ours || streq (zcert_secret_txt (ours), zeros)) {
        fprintf (stderr,
                 "pstap %s: %s %s is not a secret key file (pskeys new NAME "
                 "writes NAME.key_secret)\n",
                 command, secret_name, curve_secret);
        zcert_destroy (&ours);
        return -1;
    }
    uint8_t key[32];
    zcert_t *theirs = zsys_file_exists (broker_key) ? zcert_load (broker_key) : NULL;
    if (!theirs && !(strlen (broker_key) == 40 && zmq_z85_decode (key, broker_key))) {
        fprintf (stderr,
                 "pstap %s: %s %s is neither a public key file nor 40 Z85 "
                 "characters\n",
                 command, key_name, broker_key);
        zcert_destroy (&ours);
        return -1;
    }
    snprintf (s_keys.public_key, sizeof s_keys.public_key, "%s", zcert_public_txt (ours));
    snprintf (s_keys.secret_key, sizeof s_keys.secret_key, "%s", zcert_secret_txt (ours));
    snprintf (s_keys.server_key, sizeof s_keys.server_key, "%s",
              theirs ? zcert_public_txt (theirs) : broker_key);
    zcert_destroy (&ours);
    zcert_destroy (&theirs);
    s_keys.secret_file = curve_secret;
    s_keys.broker_key = broker_key;
    return 0;
}

void
pstap_info_apply_keys (void *socket)
{
    if (!s_keys.secret_file)
        return;
    zmq_setsockopt (socket, ZMQ_CURVE_SERVERKEY, s_keys.server_key, 41);
    zmq_setsockopt (socket, ZMQ_CURVE_PUBLICKEY, s_keys.public_key, 41);
    zmq_setsockopt (socket, ZMQ_CURVE_SECRETKEY, s_keys.secret_key, 41);
}

//  Why a query failed, from the library: "the broker refused this
//  connection: ..." says more than the status
static void
s_query_log (void *arg, int level, const char *message)
{
    snprintf (arg, PS_MAX_ERROR_LEN, "%s", message);
}

json_t *
pstap_info_query (const char *command, const char *broker, int timeout_ms, char **text)
{
    char *reply = NULL;
    char detail[PS_MAX_ERROR_LEN] = "";
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = broker;
    options.timeout_ms = timeout_ms;
    options.curve_secret = s_keys.secret_file;
    options.broker_key = s_keys.broker_key;
    options.log = s_query_log;
    options.log_arg = detail;
    int status = ps_worker_query_info_options (&options, &reply);
    if (status != PS_OK && zsys_interrupted)
        return NULL; //  Ctrl-C during the query: no error to report
    if (status != PS_OK) {
        fprintf (stderr, "pstap %s: cannot reach the broker at %s within %d ms: %s\n", command,
                 broker, timeout_ms, *detail ? detail : ps_strerror (status));
        return NULL;
    }
    ps_problem_t problem;
    json_t *info = pstap_info_parse (reply, strlen (reply), &problem);
    if (!info)
        fprintf (stderr, "pstap %s: the broker at %s sent INFO that is not JSON: %s\n", command,
                 broker, problem.message);
    if (info && text)
        *text = reply;
    else
        free (reply);
    return info;
}

//  The child of node that one step of a path names (length bytes of step)
static const json_t *
s_step (const json_t *node, const char *step, size_t length)
{
    if (json_is_object (node))
        return json_object_getn (node, step, length);
    if (!json_is_array (node) || length == 0 || length > 9 || strspn (step, "0123456789") < length)
        return NULL; //  nine digits: more elements than any INFO holds
    size_t index = 0;
    for (size_t i = 0; i < length; i++)
        index = index * 10 + (size_t)(step[i] - '0');
    return json_array_get (node, index);
}

const json_t *
pstap_info_find (const json_t *node, const char *path)
{
    while (node && path && *path) {
        size_t length = strcspn (path, ".");
        node = s_step (node, path, length);
        path += length + (path[length] == '.');
    }
    return node;
}

int64_t
pstap_info_int (const json_t *node, const char *path, int64_t fallback)
{
    const json_t *value = pstap_info_find (node, path);
    if (json_is_integer (value))
        return json_integer_value (value);
    double real = json_is_real (value) ? json_real_value (value) : 0;
    //  Within int64_t: -2^63 is exact in a double, 2^63 is the first past it
    if (json_is_real (value) && real >= -9223372036854775808.0 && real < 9223372036854775808.0)
        return (int64_t)real;
    return fallback;
}

double
pstap_info_number (const json_t *node, const char *path, double fallback)
{
    const json_t *value = pstap_info_find (node, path);
    return json_is_number (value) ? json_number_value (value) : fallback;
}

const char *
pstap_info_string (const json_t *node, const char *path, const char *fallback)
{
    const json_t *value = pstap_info_find (node, path);
    return json_is_string (value) ? json_string_value (value) : fallback;
}

const char *
pstap_info_count (const json_t *node, const char *path, char *buffer, size_t size)
{
    if (!json_is_number (pstap_info_find (node, path)))
        return "-";
    snprintf (buffer, size, "%" PRId64, pstap_info_int (node, path, 0));
    return buffer;
}

int64_t
pstap_info_world (const json_t *info)
{
    int64_t world = pstap_info_int (info, "world", 0);
    return world < 0 ? 0 : world > PS_MAX_WORKERS ? PS_MAX_WORKERS : world;
}

void
pstap_info_workers (const json_t *info, int64_t world, int64_t *clocks, int64_t *parked)
{
    for (int64_t rank = 0; rank < world; rank++)
        clocks[rank] = parked[rank] = -1;
    size_t index;
    const json_t *item;
    json_array_foreach (pstap_info_find (info, "clocks"), index, item)
    {
        if ((int64_t)index >= world)
            break;
        clocks[index] = pstap_info_int (item, "", -1);
    }
    const json_t *list = pstap_info_find (info, "parked");
    if (json_is_array (list)) {
        for (int64_t rank = 0; rank < world; rank++)
            parked[rank] = 0;
        json_array_foreach (list, index, item)
        {
            int64_t rank = pstap_info_int (item, "worker", -1);
            if (rank >= 0 && rank < world)
                parked[rank]++;
        }
    }
    json_array_foreach (pstap_info_find (info, "workers"), index, item)
    {
        int64_t rank = pstap_info_int (item, "rank", -1);
        if (rank < 0 || rank >= world)
            continue;
        const char *state = pstap_info_string (item, "state", NULL);
        clocks[rank] = state && strcmp (state, "live") != 0
                           ? -1
                           : pstap_info_int (item, "clock", clocks[rank]);
        parked[rank] = pstap_info_int (item, "parked", parked[rank]);
    }
}

const char *
pstap_info_mode (int64_t staleness)
{
    return staleness == 0 ? "BSP" : staleness < 0 ? "ASP" : "SSP";
}
