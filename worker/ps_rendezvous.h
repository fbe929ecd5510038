/*  =========================================================================
    ps_rendezvous - a worker's settings from the environment a launcher set

    Implements ps_worker_options_from_environment (ps_worker.h, which
    documents the variables and their order): for each setting, the
    caller's own (a flag), else a PSMQ_* variable, else the launcher's
    variables (Open MPI, MPICH/PMI, torchrun, Slurm, a Kubernetes Indexed
    Job or StatefulSet), else the broker (rank and world size) or the
    options' default. Each setting's value and source can be reported, for
    psworker --print-config and psmq.config ().

    Threads: any; no state. The process environment is read with getenv
    unless the caller gives a lookup (tests give their own table).

    Ownership: nothing is allocated. The options point to the strings the
    lookup returned; the config is the caller's.

    Failure: PS_EINVAL, with config->error (and options->log) naming the
    variable and its value.
    ========================================================================= */

#ifndef PS_RENDEZVOUS_H_INCLUDED
#define PS_RENDEZVOUS_H_INCLUDED

#include "ps_worker.h"

//  The lookup that reads the process environment (getenv)
const char *ps_rendezvous_getenv (void *arg, const char *name);

#endif
