/*  =========================================================================
    ps_info - the broker's status as a JSON object (the INFO reply)

    Reads the ROUTER loop's state and writes it with jansson, so every
    string is escaped. The fields are documented in docs/pstap.md; tools
    (pstap, psbench, tests) read them by name. Runs on the loop's thread.
    ========================================================================= */

#ifndef PS_INFO_H_INCLUDED
#define PS_INFO_H_INCLUDED

#include "ps_router.h"

//  The JSON text, which the caller frees; NULL when out of memory
char *ps_info_json (ps_router_t *router);

#endif
