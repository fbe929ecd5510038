/*  =========================================================================
    ps_rendezvous - a worker's settings from the environment (see
    ps_rendezvous.h; ps_worker.h lists the variables and their order)

    Each setting is decided on its own, highest source first: the caller's
    (given), a PSMQ_* variable, the launcher's variable, the broker or the
    options' default. The launcher is the first of a fixed list whose rank
    variable is set; its size variable is then the world size's source
    after PSMQ_WORKERS, so that PSMQ_RANK may come with a launcher's size
    and the other way round. Numbers are whole and checked against the
    limits of the protocol (a rank below 4096, a world of 1 to 4096), and
    the rank against the world once both are known, so that a bad
    variable is named here rather than refused by a broker as "rank 7 of
    world 3".

    Why not MPI_Init or a PMI library: the variables are what every
    launcher sets in any case, reading them needs no library and no
    collective call, and the broker then does what a PMI exchange would
    (it knows every rank).
    ========================================================================= */

#include "ps_rendezvous.h"
#include "ps_cli.h"
#include "ps_limits.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The most a worker waits for its brokers, as psworker's --wait-for-broker
#define MAX_WAIT_SECONDS 86400

//  A launcher that names each process's rank (and, but for Kubernetes, the
//  number of processes) in its variables
typedef struct {
    const char *name;  //  as reported
    const char *rank;  //  its rank variable
    const char *size;  //  its size variable, NULL: none
    const char *local; //  its local rank variable, NULL: none
    bool both;         //  found only when rank and size are both set
} launcher_t;

//  In the order ps_worker.h gives, and why there
static const launcher_t s_launchers[] = {
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     false},
    {"mpich", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", false},
    //  RANK alone is too common a name to mean torchrun
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", true},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", false},
    {"kubernetes-job", "JOB_COMPLETION_INDEX", NULL, NULL, false},
};

//  What was found of the launcher
typedef struct {
    const char *name;       //  NULL: none
    const char *rank_var;   //  variable the rank came from
    const char *rank_shown; //  its whole value, for messages
    const char *rank_text;  //  the number in it
    const char *size_var;   //  NULL: no size
    const char *size_text;
    const char *local_var; //  NULL: no local rank
    const char *local_text;
} found_t;

typedef struct {
    ps_worker_lookup_t lookup;
    void *arg;
    const ps_worker_options_t *options; //  for its log
    ps_worker_config_t *config;         //  never NULL here
} reader_t;

const char *
ps_rendezvous_getenv (void *arg, const char *name)
{
    (void)arg;
    return getenv (name);
}

//  A variable's value; set but empty counts as not set
static const char *
s_get (const reader_t *self, const char *name)
{
    const char *value = self->lookup (self->arg, name);
    return value && *value ? value : NULL;
}

static void s_report (reader_t *self, ps_setting_t setting, const char *source, const char *format,
                      ...) __attribute__ ((format (printf, 4, 5)));

static void
s_report (reader_t *self, ps_setting_t setting, const char *source, const char *format, ...)
{
    ps_worker_setting_t *entry = &self->config->settings[setting];
    snprintf (entry->source, sizeof entry->source, "%s", source);
    va_list args;
    va_start (args, format);
    vsnprintf (entry->value, sizeof entry->value, format, args);
    va_end (args);
}

static int s_fail (reader_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static int
s_fail (reader_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->config->error, sizeof self->config->error, format, args);
    va_end (args);
    if (self->options->log)
        self->options->log (self->options->log_arg, PS_WORKER_LOG_ERROR, self->config->error);
    return PS_EINVAL;
}

//  A whole number of [min, max] from variable name, whose value is shown
//  (text is the number in it); what says what it should be
static int
s_number (reader_t *self, const char *name, const char *shown, const char *text, long min, long max,
          const char *what, uint32_t *value)
{
    long parsed;
    if (ps_cli_parse_long (text, min, max, &parsed))
        return s_fail (self, "%s='%s' is not %s: a whole number from %ld to %ld", name, shown, what,
                       min, max);
    *value = (uint32_t)parsed;
    return PS_OK;
}

//  Kubernetes StatefulSet: pod NAME-N has ordinal N, and HOSTNAME is the
//  pod's name. Only inside Kubernetes, and only a name ending in -DIGITS.
static bool
s_statefulset (const reader_t *self, found_t *found)
{
    const char *host = s_get (self, "HOSTNAME");
    if (!s_get (self, "KUBERNETES_SERVICE_HOST") || !host)
        return false;
    const char *dash = strrchr (host, '-');
    if (!dash || !dash[1] || strspn (dash + 1, "0123456789") != strlen (dash + 1))
        return false;
    *found = (found_t){.name = "kubernetes-statefulset",
                       .rank_var = "HOSTNAME",
                       .rank_shown = host,
                       .rank_text = dash + 1};
    return true;
}

//  The first launcher whose variables are set
static void
s_find_launcher (const reader_t *self, found_t *found)
{
    *found = (found_t){0};
    for (size_t i = 0; i < sizeof s_launchers / sizeof s_launchers[0]; i++) {
        const launcher_t *launcher = &s_launchers[i];
        const char *rank = s_get (self, launcher->rank);
        const char *size = launcher->size ? s_get (self, launcher->size) : NULL;
        if (!rank || (launcher->both && !size))
            continue;
        *found = (found_t){.name = launcher->name,
                           .rank_var = launcher->rank,
                           .rank_shown = rank,
                           .rank_text = rank,
                           .size_var = size ? launcher->size : NULL,
                           .size_text = size,
                           .local_var = launcher->local,
                           .local_text = launcher->local ? s_get (self, launcher->local) : NULL};
        return;
    }
    s_statefulset (self, found);
}

//  options->broker, curve_secret or broker_key: given, a variable, or left
static void
s_string (reader_t *self, const char **field, bool given, const char *variable,
          ps_setting_t setting)
{
    const char *value = given ? NULL : s_get (self, variable);
    if (value)
        *field = value;
    const char *source = given ? "given" : value ? variable : *field ? "default" : "none";
    s_report (self, setting, source, "%s", *field ? *field : "");
}

static int
s_wait_for_broker (reader_t *self, ps_worker_options_t *options, bool given)
{
    const char *text = given ? NULL : s_get (self, "PSMQ_WAIT_FOR_BROKER");
    if (text) {
        char *end;
        double seconds = strtod (text, &end);
        if (end == text || *end || !isfinite (seconds) || seconds < 0 || seconds > MAX_WAIT_SECONDS)
            return s_fail (self,
                           "PSMQ_WAIT_FOR_BROKER='%s' is not a number of seconds from 0 to %d",
                           text, MAX_WAIT_SECONDS);
        options->wait_for_broker_ms = (int)lround (seconds * 1000);
    }
    s_report (self, PS_SETTING_WAIT_FOR_BROKER,
              given  ? "given"
              : text ? "PSMQ_WAIT_FOR_BROKER"
                     : "default",
              "%g", options->wait_for_broker_ms / 1000.0);
    return PS_OK;
}

//  The rank: given, PSMQ_RANK, the launcher's, or the broker's. *source
//  and *shown name where it came from, for the check against the world.
static int
s_rank (reader_t *self, ps_worker_options_t *options, bool given, const found_t *found,
        const char **source, const char **shown)
{
    const char *text = given ? NULL : s_get (self, "PSMQ_RANK");
    *source = "given";
    *shown = NULL;
    int status = PS_OK;
    if (text) {
        *source = "PSMQ_RANK";
        *shown = text;
        status = s_number (self, "PSMQ_RANK", text, text, 0, PS_MAX_WORKERS - 1, "a rank",
                           &options->rank);
    }
    else if (!given && found->name) {
        *source = found->rank_var;
        *shown = found->rank_shown;
        status = s_number (self, found->rank_var, found->rank_shown, found->rank_text, 0,
                           PS_MAX_WORKERS - 1, "a rank", &options->rank);
    }
    else if (!given)
        options->rank = PS_WORKER_ANY_RANK;
    if (status)
        return status;
    if (options->rank == PS_WORKER_ANY_RANK)
        s_report (self, PS_SETTING_RANK, "the broker", "%s", "");
    else
        s_report (self, PS_SETTING_RANK, *source, "%u", options->rank);
    return PS_OK;
}

//  The world size: given, PSMQ_WORKERS, the launcher's, or the broker's
static int
s_world (reader_t *self, ps_worker_options_t *options, bool given, const found_t *found,
         const char **source, const char **shown)
{
    const char *text = given ? NULL : s_get (self, "PSMQ_WORKERS");
    *source = "given";
    *shown = NULL;
    int status = PS_OK;
    if (text) {
        *source = "PSMQ_WORKERS";
        *shown = text;
        status = s_number (self, "PSMQ_WORKERS", text, text, 1, PS_MAX_WORKERS,
                           "a number of workers", &options->world_size);
    }
    else if (!given && found->size_var) {
        *source = found->size_var;
        *shown = found->size_text;
        status = s_number (self, found->size_var, found->size_text, found->size_text, 1,
                           PS_MAX_WORKERS, "a number of workers", &options->world_size);
    }
    else if (!given)
        options->world_size = 0;
    if (status)
        return status;
    if (options->world_size == 0)
        s_report (self, PS_SETTING_WORLD_SIZE, "the broker", "%s", "");
    else
        s_report (self, PS_SETTING_WORLD_SIZE, *source, "%u", options->world_size);
    return PS_OK;
}

//  "5 (PSMQ_RANK='5')", or "5 (given)"
static void
s_origin (char *text, size_t size, uint32_t value, const char *source, const char *shown)
{
    if (shown)
        snprintf (text, size, "%u (%s='%s')", value, source, shown);
    else
        snprintf (text, size, "%u (%s)", value, source);
}

int
ps_worker_options_from_environment (ps_worker_options_t *options, unsigned given,
                                    ps_worker_lookup_t lookup, void *lookup_arg,
                                    ps_worker_config_t *config)
{
    if (!options)
        return PS_EINVAL;
    ps_worker_config_t scratch;
    reader_t self = {.lookup = lookup ? lookup : ps_rendezvous_getenv,
                     .arg = lookup_arg,
                     .options = options,
                     .config = config ? config : &scratch};
    memset (self.config, 0, sizeof *self.config);
    static const char *names[PS_SETTINGS] = {"broker",         "rank",         "world_size",
                                             "local_rank",     "curve_secret", "broker_key",
                                             "wait_for_broker"};
    for (int i = 0; i < PS_SETTINGS; i++) {
        snprintf (self.config->settings[i].name, sizeof self.config->settings[i].name, "%s",
                  names[i]);
        snprintf (self.config->settings[i].source, sizeof self.config->settings[i].source, "none");
    }
    found_t found;
    s_find_launcher (&self, &found);
    snprintf (self.config->launcher, sizeof self.config->launcher, "%s",
              found.name ? found.name : "");

    s_string (&self, &options->broker, given & PS_WORKER_GIVEN_BROKER, "PSMQ_BROKER",
              PS_SETTING_BROKER);
    const char *rank_source, *rank_shown, *world_source, *world_shown;
    int status =
        s_rank (&self, options, given & PS_WORKER_GIVEN_RANK, &found, &rank_source, &rank_shown);
    if (status == PS_OK)
        status = s_world (&self, options, given & PS_WORKER_GIVEN_WORLD_SIZE, &found, &world_source,
                          &world_shown);
    if (status)
        return status;
    if (found.local_text)
        s_report (&self, PS_SETTING_LOCAL_RANK, found.local_var, "%s", found.local_text);
    s_string (&self, &options->curve_secret, given & PS_WORKER_GIVEN_CURVE_SECRET,
              "PSMQ_CURVE_SECRET", PS_SETTING_CURVE_SECRET);
    s_string (&self, &options->broker_key, given & PS_WORKER_GIVEN_BROKER_KEY, "PSMQ_BROKER_KEY",
              PS_SETTING_BROKER_KEY);
    status = s_wait_for_broker (&self, options, given & PS_WORKER_GIVEN_WAIT_FOR_BROKER);
    if (status)
        return status;

    //  Both known: the ranks must fit the world
    uint32_t rank = options->rank, world = options->world_size;
    uint32_t local = options->local_workers > 1 ? options->local_workers : 1;
    if (rank != PS_WORKER_ANY_RANK && world && (rank >= world || local > world - rank)) {
        char named_rank[160], named_world[160];
        s_origin (named_rank, sizeof named_rank, rank, rank_source, rank_shown);
        s_origin (named_world, sizeof named_world, world, world_source, world_shown);
        return s_fail (&self, "rank %s with %u local workers does not fit a world of %s",
                       named_rank, local, named_world);
    }
    return PS_OK;
}
