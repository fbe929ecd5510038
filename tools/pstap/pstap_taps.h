/*  =========================================================================
    pstap_taps - the taps of the brokers pstap reads, one SUB socket each

    pstap_taps_new finds the brokers (pstap_group_new), subscribes to what
    the filter needs on the tap of each broker the filter wants, and
    waits for each handshake, so that an unreachable tap is said at once
    rather than waited on in silence. pstap_taps_receive then hands out
    whole messages from whichever tap has one, taking turns.

    Ownership: the taps own their ZeroMQ context, their sockets and the
    group; pstap_taps_group lends the group. An entry from
    pstap_taps_receive points into the taps and is valid until the next
    call. One thread. Failure: pstap_taps_new returns NULL, said on
    stderr, when no tap could be read; a message that is not a tap record
    (too many frames, no record) is dropped and counted, and the count
    said when the taps are destroyed.
    ========================================================================= */

#ifndef PSTAP_TAPS_H_INCLUDED
#define PSTAP_TAPS_H_INCLUDED

#include "ps_tapfilter.h"
#include "ps_taplog.h"
#include "pstap_group.h"
#include "pstap_options.h"

typedef struct pstap_taps_t pstap_taps_t;

//  Find the brokers options name and read the taps filter wants: the
//  taps, or NULL (said on stderr) with nothing left to free
pstap_taps_t *pstap_taps_new (const pstap_options_t *options, const ps_tapfilter_t *filter);
//  Say what was dropped, close every socket, free the group, and null the
//  pointer; idempotent
void pstap_taps_destroy (pstap_taps_t **self_p);
//  Receive one whole message within timeout_ms into entry: 1, with
//  *source the member whose tap it came on, or 0 when none came (or a
//  signal)
int pstap_taps_receive (pstap_taps_t *self, int timeout_ms, ps_taplog_entry_t *entry,
                        pstap_member_t **source);
//  The brokers read, lent
pstap_group_t *pstap_taps_group (pstap_taps_t *self);

#endif
