/*  =========================================================================
    ps_tappair - replies paired with the requests they answer

    pstap shows how long ago a reply's request came, and top counts the
    requests still waiting per worker: both come from this table, fed with
    every record in the order they arrive (before any filter, so that
    replies shown alone are still paired).

    Ownership: ps_tappair_new returns a table the caller destroys; it
    copies what it keeps of a record. A table belongs to one thread.
    Failure: ps_tappair_new returns NULL when out of memory; a request
    that cannot be remembered for want of memory is left unpaired.
    ========================================================================= */

#ifndef PS_TAPPAIR_H_INCLUDED
#define PS_TAPPAIR_H_INCLUDED

#include "ps_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ps_tappair_t ps_tappair_t;

//  A pairing table that remembers at most max_pending requests (then it
//  forgets them all and counts them); NULL when out of memory
ps_tappair_t *ps_tappair_new (size_t max_pending);
//  Free the table and null the pointer; idempotent
void ps_tappair_destroy (ps_tappair_t **self_p);
//  Remember a request (heartbeats excepted: they get no reply), or find
//  and forget the request a reply or a rejection answers: true when it was
//  found, with its receipt time in *request_us. Other records: false.
bool ps_tappair_update (ps_tappair_t *self, const ps_tap_record_t *record, uint64_t *request_us);
//  Add each remembered request of a worker below nworkers to pending[worker]
void ps_tappair_pending (ps_tappair_t *self, uint64_t *pending, size_t nworkers);
//  Requests forgotten because the table was full
uint64_t ps_tappair_forgotten (const ps_tappair_t *self);

#endif
