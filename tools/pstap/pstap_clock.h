/*  =========================================================================
    pstap_clock - pstap clock: the vector clock of each broker, refreshed

    Called once from main's thread with the parsed options; refreshes
    every --interval-ms until -n N refreshes or a signal, and returns
    pstap's exit status (0; 1 when no broker answered; 2 without
    --broker).
    ========================================================================= */

#ifndef PSTAP_CLOCK_H_INCLUDED
#define PSTAP_CLOCK_H_INCLUDED

#include "pstap_options.h"

int pstap_clock (const pstap_options_t *options);

#endif
