/*  =========================================================================
    pstap_group - the brokers one pstap reads: a broker alone, the members
    named by --broker or --tap, or the whole group one member's INFO names

    pstap_group_new asks each broker of --broker for INFO (a member that
    does not answer is named on stderr and left out), and for one member
    of a group, asks the others its INFO lists; with --tap the members are
    the taps themselves, with nothing known of them. Members come in shard
    order.

    Ownership: the group owns its members, their strings and their INFO;
    pstap_group_destroy frees them all. The structs are open because every
    view walks the members: a view may take a member's info (and set the
    field to NULL) to own it, and the pipeline sets said_mismatch. One
    thread. Failure: NULL, said on stderr, when no broker answered (or a
    signal came, zsys_interrupted).
    ========================================================================= */

#ifndef PSTAP_GROUP_H_INCLUDED
#define PSTAP_GROUP_H_INCLUDED

#include "ps_limits.h"
#include "pstap_options.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  One broker pstap reads: a member of a group, or a broker alone
typedef struct {
    char *endpoint;     //  where its INFO was asked; NULL with --tap
    char *tap;          //  its tap's endpoint, "" when it runs without one,
                        //  NULL when its INFO does not say
    json_t *info;       //  its INFO at the start, NULL with --tap (or once taken)
    char *info_text;    //  the same, as the broker sent it
    uint32_t shard;     //  its place in its group, 0 alone
    uint32_t shards;    //  brokers in its group, 1 alone, 0 unknown (--tap)
    bool said_mismatch; //  its tap carried another broker's records, said
} pstap_member_t;

typedef struct {
    pstap_member_t members[PS_MAX_SHARDS]; //  in shard order
    size_t nmembers;                       //  how many
} pstap_group_t;

//  The brokers options name (see above); NULL when none answered
pstap_group_t *pstap_group_new (const pstap_options_t *options);
//  Free the group, its members and their INFO, and null the pointer
void pstap_group_destroy (pstap_group_t **self_p);
//  "tcp://b:5556 (b1/3)", or the endpoint alone for a broker alone, into
//  buffer
const char *pstap_member_name (const pstap_member_t *member, char *buffer, size_t size);

#endif
