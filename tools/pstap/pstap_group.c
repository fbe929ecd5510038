/*  =========================================================================
    pstap_group - the brokers one pstap reads

    A broker group (psbroker --shard I --shards G) is watched as one: each
    member publishes on its own tap, so pstap asks every member's INFO for
    its tap. --broker takes the list of members, or one of them, whose
    INFO names the others once a worker has joined (the endpoints as the
    first worker named them; --member-only reads that one alone). A member
    that does not answer costs --timeout-ms, is named, and pstap goes on
    with the others. The same broker named twice (by two endpoints, or a
    member that answers for another's shard) is read once.

    A tap bound to every interface (psbroker --tap with host * or 0.0.0.0)
    says it is at tcp://0.0.0.0:PORT, which from another machine is that
    machine: such a tap is reached at the host the broker itself was
    reached at.
    ========================================================================= */

#include "pstap_group.h"
#include "pstap_info.h"
#include "ps_limits.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Free what a member owns
static void
s_member_clear (pstap_member_t *member)
{
    free (member->endpoint);
    free (member->tap);
    json_decref (member->info);
    free (member->info_text);
}

void
pstap_group_destroy (pstap_group_t **self_p)
{
    pstap_group_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nmembers; i++)
        s_member_clear (&self->members[i]);
    free (self);
    *self_p = NULL;
}

//  "tcp://b:5556 (b1/3)", or the endpoint alone for a broker alone
const char *
pstap_member_name (const pstap_member_t *member, char *buffer, size_t size)
{
    const char *endpoint = member->endpoint ? member->endpoint : member->tap;
    if (member->shards > 1)
        snprintf (buffer, size, "%.300s (b%u/%u)", endpoint, member->shard, member->shards);
    else
        snprintf (buffer, size, "%.300s", endpoint);
    return buffer;
}

//  A copy of the item of a comma-separated list at *cursor, which moves on
//  past it (NULL after the last); ps_cli_endpoints has vouched for the list
static char *
s_list_next (const char **cursor)
{
    const char *item = *cursor;
    size_t length = strcspn (item, ",");
    *cursor = item[length] ? item + length + 1 : NULL;
    return strndup (item, length);
}

//  A tap bound to every interface (psbroker --tap tcp://*:6555) says it is
//  at tcp://0.0.0.0:6555, which from another machine is that machine: such
//  a tap is reached at the host the broker itself was reached at. A copy.
static char *
s_tap_for (const char *tap, const char *broker)
{
    static const char *anywhere[] = {"tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"};
    const char *port = NULL;
    for (size_t i = 0; i < sizeof anywhere / sizeof anywhere[0] && !port; i++)
        if (strncmp (tap, anywhere[i], strlen (anywhere[i])) == 0)
            port = tap + strlen (anywhere[i]);
    const char *colon = strrchr (broker, ':');
    if (!port || strncmp (broker, "tcp://", 6) != 0 || !colon || colon < broker + 6)
        return strdup (tap);
    size_t size = strlen (broker) + strlen (port) + 1;
    char *reached = malloc (size);
    if (reached)
        snprintf (reached, size, "%.*s:%s", (int)(colon - broker), broker, port);
    return reached;
}

//  Ask the broker at endpoint for INFO and add it as a member: NULL (said
//  on stderr) when it does not answer, or is a member already
static pstap_member_t *
s_group_query (pstap_group_t *self, const pstap_options_t *options, const char *endpoint)
{
    char *text = NULL;
    json_t *info = pstap_info_query (options->command, endpoint, options->timeout_ms, &text);
    if (!info)
        return NULL;
    //  A broker from before groups says neither: it is alone
    int64_t shard = pstap_info_int (info, "shard", 0), shards = pstap_info_int (info, "shards", 1);
    if (shards < 1 || shards > PS_MAX_SHARDS || shard < 0 || shard >= shards) {
        fprintf (stderr,
                 "pstap %s: %s says it is shard %" PRId64 " of %" PRId64 ": taken as alone\n",
                 options->command, endpoint, shard, shards);
        shard = 0, shards = 1;
    }
    const char *tap = pstap_info_string (info, "tap", NULL);
    pstap_member_t candidate = {.endpoint = strdup (endpoint),
                                .tap = tap ? s_tap_for (tap, endpoint) : NULL,
                                .info = info,
                                .info_text = text,
                                .shard = (uint32_t)shard,
                                .shards = (uint32_t)shards};
    const pstap_member_t *same = NULL;
    for (size_t i = 0; i < self->nmembers && !same; i++) {
        const pstap_member_t *member = &self->members[i];
        bool twice = shards > 1 && member->shards == shards && member->shard == shard;
        if (twice || (candidate.tap && *candidate.tap && member->tap &&
                      strcmp (candidate.tap, member->tap) == 0))
            same = member;
    }
    char name[400];
    if (same)
        fprintf (stderr, "pstap %s: %s is the same broker as %s: read once\n", options->command,
                 endpoint, pstap_member_name (same, name, sizeof name));
    else if (!candidate.endpoint || (tap && !candidate.tap))
        fprintf (stderr, "pstap %s: out of memory\n", options->command);
    else {
        self->members[self->nmembers] = candidate;
        return &self->members[self->nmembers++];
    }
    s_member_clear (&candidate);
    return NULL;
}

//  The rest of the group the first member belongs to, from its INFO's
//  "group": the endpoints in shard order as the first worker named them
static void
s_group_discover (pstap_group_t *self, const pstap_options_t *options)
{
    pstap_member_t *first = &self->members[0];
    const json_t *list = pstap_info_find (first->info, "group");
    if (json_array_size (list) == 0) {
        fprintf (stderr,
                 "pstap %s: %s is shard %u of %u; the other members are not known until a worker "
                 "joins: give --broker EP0,EP1,... (all %u, in shard order); watching this one "
                 "only\n",
                 options->command, first->endpoint, first->shard, first->shards, first->shards);
        return;
    }
    for (uint32_t shard = 0; shard < json_array_size (list) && self->nmembers < PS_MAX_SHARDS;
         shard++) {
        if (shard == first->shard)
            continue;
        const char *endpoint = json_string_value (json_array_get (list, shard));
        if (!endpoint || !*endpoint || strlen (endpoint) > PS_MAX_ENDPOINT_LEN) {
            fprintf (stderr, "pstap %s: %s names no usable endpoint for shard %u\n",
                     options->command, first->endpoint, shard);
            continue;
        }
        pstap_member_t *member = s_group_query (self, options, endpoint);
        if (!member) {
            fprintf (stderr, "pstap %s: going on without shard %u of %u (%s)\n", options->command,
                     shard, first->shards, endpoint);
            continue;
        }
        if (member->shard != shard || member->shards != first->shards)
            fprintf (stderr,
                     "pstap %s: %s answers as shard %u of %u, but %s names it shard %u of %u\n",
                     options->command, endpoint, member->shard, member->shards, first->endpoint,
                     shard, first->shards);
    }
}

//  The brokers to read: --tap's taps as they are, or --broker's brokers
//  and, for one member of a group, the others its INFO names. 0, or -1
//  (said on stderr) when none answers.
static int
s_group_resolve (pstap_group_t *self, const pstap_options_t *options)
{
    const char *cursor = options->tap ? options->tap : options->broker;
    bool list = strchr (cursor, ',') != NULL;
    while (cursor && self->nmembers < PS_MAX_SHARDS) {
        char *endpoint = s_list_next (&cursor);
        if (!endpoint) {
            fprintf (stderr, "pstap %s: out of memory\n", options->command);
            return -1;
        }
        if (options->tap)
            self->members[self->nmembers++] = (pstap_member_t){.tap = endpoint};
        else {
            if (!s_group_query (self, options, endpoint) && list && !zsys_interrupted)
                fprintf (stderr, "pstap %s: going on without %s\n", options->command, endpoint);
            free (endpoint);
        }
        if (zsys_interrupted)
            return -1;
    }
    if (self->nmembers == 0) {
        if (list)
            fprintf (stderr, "pstap %s: none of the brokers answered\n", options->command);
        return -1;
    }
    if (!options->tap && !list && !options->member_only && self->members[0].shards > 1)
        s_group_discover (self, options);
    //  Shown in shard order, whichever member was named (stable: brokers
    //  alone are all shard 0 and keep the order they were given in)
    for (size_t i = 1; i < self->nmembers; i++)
        for (size_t j = i; j > 0 && self->members[j - 1].shard > self->members[j].shard; j--) {
            pstap_member_t swap = self->members[j];
            self->members[j] = self->members[j - 1];
            self->members[j - 1] = swap;
        }
    return zsys_interrupted ? -1 : 0;
}

pstap_group_t *
pstap_group_new (const pstap_options_t *options)
{
    pstap_group_t *self = calloc (1, sizeof *self);
    if (!self) {
        fprintf (stderr, "pstap %s: out of memory\n", options->command);
        return NULL;
    }
    if (s_group_resolve (self, options))
        pstap_group_destroy (&self);
    return self;
}
