/*  =========================================================================
    ps_session_private - what ps_session.c and ps_session_join.c share

    ps_session is cut in two files by job: ps_session.c sends requests and
    takes their replies, ps_session_join.c registers the worker with its
    group (HELLO, a rank from the broker, BYE, the retries of a first
    join). Both work on the same session, on the caller's thread; nothing
    else may include this header.
    ========================================================================= */

#ifndef PS_SESSION_PRIVATE_H_INCLUDED
#define PS_SESSION_PRIVATE_H_INCLUDED

#include "ps_codec.h"
#include "ps_group.h"
#include "ps_session.h"
#include "ps_tickets.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct ps_session_t {
    ps_worker_options_t options;        //  as given; broker points to our copy
    char *broker;                       //  our copy of the endpoint list
    ps_group_t *group;                  //  the brokers
    uint32_t nlinks;                    //  how many
    ps_tickets_t *tickets;              //  requests in flight
    ps_codec_t *codec;                  //  decodes replies
    int32_t staleness;                  //  from HELLO
    int64_t clock;                      //  the worker's clock (CLOCKs as sent)
    bool joined;                        //  the first HELLO succeeded
    bool rejoining;                     //  in s_rejoin: no rejoin within it
    uint64_t granting;                  //  seq of the push in parts being sent,
                                        //  0 when none (s_send_parts)
    uint32_t grants;                    //  parts its broker let us send
    bool ask_rank;                      //  the options named no rank: shard 0
                                        //  gives one at join (then it is ours)
    bool rank_given;                    //  shard 0 gave one in this attempt
    char error[PS_SESSION_ERROR_BYTES]; //  detail of the last failure
};

//  Monotonic milliseconds
static inline int64_t
ps_session_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  Handle what each link's socket monitor and heartbeat saw (connections
//  lost or back); PS_OK or the status the requests failed with
int ps_session_links_events (ps_session_t *self);

#endif
