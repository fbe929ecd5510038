/*  =========================================================================
    ps_tapfilter - which tap records a user asked for

    A filter is parsed once into sets (bitmasks of kinds and types, a
    sorted list of workers, a list of keys, thresholds) so that matching a
    record costs a few comparisons and no allocation. Kind, type and worker
    are also in the XPUB topic, so ps_tapfilter_topics turns them into
    subscriptions and the broker drops unwanted records before sending
    them; a topic prefix cannot stop in the middle, so an unconstrained
    dimension before a constrained one is enumerated in full. Rejected:
    subscribing to everything and filtering here (costs the broker and the
    network every record), and regular expressions (the few names we have
    fit in sets). Numbers in terms are read by ps_cli, like every number
    on the command line.

    The shard of a group's broker is not in the topic: shard= is matched
    here, and ps_tapfilter_wants_shard lets pstap leave out the taps of
    brokers nobody asked for.
    ========================================================================= */

#include "ps_tapfilter.h"
#include "ps_cli.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Largest TapKind and MsgType values we know by name
#define S_KIND_LAST PSMQ__TAP_KIND__TAP_CLOCK
#define S_TYPE_LAST PSMQ__MSG_TYPE__ERROR
//  Entries in a filter's worker and key lists
#define S_FILTER_MAX_WORKERS 64
#define S_FILTER_MAX_KEYS 64

//  The bounds of a bytes> bytes< or lat> lat< term
typedef struct {
    uint64_t above, below;     //  >N, <N
    bool has_above, has_below; //  whether given
} s_range_t;

//  The numbers a worker= or shard= term names: sorted, no repeats
typedef struct {
    int64_t values[PS_MAX_SHARDS]; //  room for every shard, and more than
                                   //  S_FILTER_MAX_WORKERS
    size_t count;                  //  0 for any
} s_ids_t;

struct ps_tapfilter_t {
    uint32_t kinds;                                   //  bit per TapKind, 0 for any
    uint32_t types;                                   //  bit per MsgType, 0 for any
    s_ids_t workers;                                  //  worker=
    char keys[S_FILTER_MAX_KEYS][PS_MAX_KEY_LEN + 1]; //  any of these
    size_t nkeys;                                     //  0 for any
    s_range_t bytes;                                  //  bytes>N, bytes<N
    s_range_t lat;                                    //  lat>T, lat<T, microseconds
    enum { S_ANY, S_OK, S_ERR } status;               //  status=
    s_ids_t shards;                                   //  shard=
};

//  Cut item at its first comma; what follows, or NULL after the last item
static char *
s_split (char *item)
{
    char *comma = strchr (item, ',');
    if (!comma)
        return NULL;
    *comma = '\0';
    return comma + 1;
}

//  The value from first to last whose name is item, or -1
static int
s_lookup (const char *item, const char *(*name) (int), int first, int last)
{
    for (int value = first; value <= last; value++)
        if (strcmp (item, name (value)) == 0)
            return value;
    return -1;
}

//  A whole number from 0 to max at the start of *cursor, digits only (no
//  sign, no space: ps_cli's strtol would take those), which moves past it;
//  0, or -1
static int
s_parse_number (const char **cursor, long max, uint64_t *value)
{
    const char *start = *cursor;
    size_t length = strspn (start, "0123456789");
    if (length == 0)
        return -1;
    while (length > 1 && *start == '0') //  leading zeros say nothing
        start++, length--;
    char digits[24];
    long number;
    if (length >= sizeof digits)
        return -1;
    memcpy (digits, start, length);
    digits[length] = '\0';
    if (ps_cli_parse_long (digits, 0, max, &number))
        return -1;
    *value = (uint64_t)number;
    *cursor = start + length;
    return 0;
}

//  A suffix a number may carry, and what it multiplies the number by
typedef struct {
    const char *suffix; //  all that may follow the digits; "" for none
    uint64_t factor;    //  its unit
} s_unit_t;

//  Sizes in powers of 1024; latencies in microseconds
static const s_unit_t s_size_units[] = {{"", 1},           {"K", 1ULL << 10}, {"k", 1ULL << 10},
                                        {"M", 1ULL << 20}, {"m", 1ULL << 20}, {"G", 1ULL << 30},
                                        {"g", 1ULL << 30}, {NULL, 0}};
static const s_unit_t s_time_units[] = {
    {"", 1}, {"us", 1}, {"ms", 1000}, {"s", 1000000}, {NULL, 0}};

//  A number followed by one of units, scaled without overflow; 0, or -1
static int
s_parse_amount (const char *text, const s_unit_t *units, uint64_t *value)
{
    uint64_t number;
    if (s_parse_number (&text, LONG_MAX, &number))
        return -1;
    for (; units->suffix; units++)
        if (strcmp (text, units->suffix) == 0) {
            if (number > UINT64_MAX / units->factor)
                return -1;
            *value = number * units->factor;
            return 0;
        }
    return -1;
}

//  One bound of a range: what (with hint, the units it takes) is refused
//  when it is not a number with one of units
static int
s_parse_bound (s_range_t *range, const s_unit_t *units, const char *what, const char *hint,
               const char *term, char op, const char *value, ps_problem_t *problem)
{
    uint64_t amount;
    if (s_parse_amount (value, units, &amount))
        return ps_problem_set (problem, 0, "bad %s '%s' in '%s' (a number with %s)", what, value,
                               term, hint);
    if (op == '>')
        range->above = amount, range->has_above = true;
    else
        range->below = amount, range->has_below = true;
    return 0;
}

//  Each parser gets the term (for messages), its operator and one item
//  of its value (the whole value, for a term that takes no list)
typedef int (s_parser_fn) (ps_tapfilter_t *self, const char *term, char op, const char *item,
                           ps_problem_t *problem);

//  The value from first to last that name () names item, as a bit of
//  mask; what (and hint, the names) for the message
static int
s_parse_name (uint32_t *mask, const char *(*name) (int), int first, int last, const char *what,
              const char *hint, const char *term, const char *item, ps_problem_t *problem)
{
    int found = s_lookup (item, name, first, last);
    if (found < 0)
        return ps_problem_set (problem, 0, "unknown %s '%s' in '%s'%s", what, item, term, hint);
    *mask |= 1u << found;
    return 0;
}

static int
s_parse_kind (ps_tapfilter_t *self, const char *term, char op, const char *item,
              ps_problem_t *problem)
{
    return s_parse_name (&self->kinds, ps_codec_tap_kind_name, 1, S_KIND_LAST, "kind",
                         " (req, rep, conn, disc, evict, rej, clock)", term, item, problem);
}

//  "none" is accepted as well: records that are not about a message
static int
s_parse_type (ps_tapfilter_t *self, const char *term, char op, const char *item,
              ps_problem_t *problem)
{
    return s_parse_name (&self->types, ps_codec_type_name, 0, S_TYPE_LAST, "type", "", term, item,
                         problem);
}

//  A number from 0 to max into ids, which holds at most limit of them:
//  what it is (worker) and what its numbers are (a rank) for the message.
//  Kept sorted without repeats, so that topics come out once and in order.
static int
s_parse_id (s_ids_t *ids, size_t limit, long max, const char *what, const char *numbers,
            const char *term, const char *item, ps_problem_t *problem)
{
    const char *cursor = item;
    uint64_t number;
    if (s_parse_number (&cursor, max, &number) || *cursor)
        return ps_problem_set (problem, 0, "bad %s '%s' in '%s' (%s from 0 to %ld)", what, item,
                               term, numbers, max);
    size_t at = 0;
    while (at < ids->count && ids->values[at] < (int64_t)number)
        at++;
    if (at < ids->count && ids->values[at] == (int64_t)number)
        return 0;
    if (ids->count == limit)
        return ps_problem_set (problem, 0, "more than %zu %ss in '%s'", limit, what, term);
    memmove (ids->values + at + 1, ids->values + at, (ids->count - at) * sizeof ids->values[0]);
    ids->values[at] = (int64_t)number;
    ids->count++;
    return 0;
}

//  Whether ids holds value (any value when it holds none)
static bool
s_in_ids (const s_ids_t *ids, int64_t value)
{
    if (ids->count == 0)
        return true;
    for (size_t i = 0; i < ids->count; i++)
        if (ids->values[i] == value)
            return true;
    return false;
}

static int
s_parse_worker (ps_tapfilter_t *self, const char *term, char op, const char *item,
                ps_problem_t *problem)
{
    return s_parse_id (&self->workers, S_FILTER_MAX_WORKERS, PS_MAX_WORKERS - 1, "worker", "a rank",
                       term, item, problem);
}

static int
s_parse_key (ps_tapfilter_t *self, const char *term, char op, const char *item,
             ps_problem_t *problem)
{
    ps_problem_t key_problem;
    if (ps_codec_check_key (item, &key_problem))
        //  Keys may be long: both quoted whole would leave no room for why
        return ps_problem_set (problem, 0, "bad key '%.64s' in '%.64s': %s", item, term,
                               key_problem.message);
    if (self->nkeys == S_FILTER_MAX_KEYS)
        return ps_problem_set (problem, 0, "more than %d keys in '%s'", S_FILTER_MAX_KEYS, term);
    snprintf (self->keys[self->nkeys++], sizeof self->keys[0], "%s", item);
    return 0;
}

//  N with an optional K, M or G (powers of 1024)
static int
s_parse_bytes (ps_tapfilter_t *self, const char *term, char op, const char *item,
               ps_problem_t *problem)
{
    return s_parse_bound (&self->bytes, s_size_units, "size", "K, M or G", term, op, item, problem);
}

//  T with an optional us, ms or s (microseconds when there is none)
static int
s_parse_lat (ps_tapfilter_t *self, const char *term, char op, const char *item,
             ps_problem_t *problem)
{
    return s_parse_bound (&self->lat, s_time_units, "latency", "us, ms or s", term, op, item,
                          problem);
}

static int
s_parse_status (ps_tapfilter_t *self, const char *term, char op, const char *item,
                ps_problem_t *problem)
{
    if (strcmp (item, "ok") == 0)
        self->status = S_OK;
    else if (strcmp (item, "err") == 0)
        self->status = S_ERR;
    else
        return ps_problem_set (problem, 0, "unknown status '%s' in '%s' (ok or err)", item, term);
    return 0;
}

//  The brokers of a group by their place in it; a broker alone is shard 0
static int
s_parse_shard (ps_tapfilter_t *self, const char *term, char op, const char *item,
               ps_problem_t *problem)
{
    return s_parse_id (&self->shards, PS_MAX_SHARDS, PS_MAX_SHARDS - 1, "shard", "a broker", term,
                       item, problem);
}

static const struct {
    const char *name;   //  before the operator
    const char *ops;    //  operators it takes
    s_parser_fn *parse; //  reads the value into the filter
    bool list;          //  takes NAME,NAME,...
} s_terms[] = {
    {"kind", "=", s_parse_kind, true},      {"type", "=", s_parse_type, true},
    {"worker", "=", s_parse_worker, true},  {"key", "=", s_parse_key, true},
    {"bytes", "<>", s_parse_bytes, false},  {"lat", "<>", s_parse_lat, false},
    {"status", "=", s_parse_status, false}, {"shard", "=", s_parse_shard, true},
};
#define S_TERMS (sizeof s_terms / sizeof s_terms[0])

//  Parse one term into self. seen has one bit per term name and operator,
//  so that bytes>1K bytes<1M is a range but kind=req kind=rep is refused.
static int
s_parse_term (ps_tapfilter_t *self, const char *term, uint32_t *seen, ps_problem_t *problem)
{
    size_t name_length = strcspn (term, "=<>");
    if (!term[name_length])
        return ps_problem_set (problem, 0, "bad term '%s' (NAME=VALUE, bytes>N, lat<T, ...)", term);
    size_t index = 0;
    while (index < S_TERMS && (strlen (s_terms[index].name) != name_length ||
                               strncmp (s_terms[index].name, term, name_length)))
        index++;
    if (index == S_TERMS)
        return ps_problem_set (
            problem, 0, "unknown term '%s' (kind, type, worker, key, bytes, lat, status, shard)",
            term);
    char op = term[name_length];
    if (!strchr (s_terms[index].ops, op))
        return ps_problem_set (problem, 0, "'%s' takes %s in '%s'", s_terms[index].name,
                               s_terms[index].ops[1] ? "'>' or '<'" : "'='", term);
    uint32_t bit = 1u << (index * 3 + (op == '=' ? 0 : op == '>' ? 1 : 2));
    if (*seen & bit)
        return ps_problem_set (problem, 0, "'%.*s%c' given twice, again in '%s'", (int)name_length,
                               term, op, term);
    *seen |= bit;

    const char *value = term + name_length + 1;
    if (!*value || (s_terms[index].list &&
                    (*value == ',' || strstr (value, ",,") || value[strlen (value) - 1] == ',')))
        return ps_problem_set (problem, 0, "empty value in '%s'", term);
    char *copy = strdup (value);
    if (!copy)
        return ps_problem_set (problem, 0, "out of memory");
    int rc = 0;
    for (char *item = copy, *next; item && rc == 0; item = next) {
        next = s_terms[index].list ? s_split (item) : NULL;
        rc = s_terms[index].parse (self, term, op, item, problem);
    }
    free (copy);
    return rc;
}

ps_tapfilter_t *
ps_tapfilter_new (const char *expression, ps_problem_t *problem)
{
    ps_tapfilter_t *self = calloc (1, sizeof *self);
    if (!self) {
        ps_problem_set (problem, 0, "out of memory");
        return NULL;
    }
    uint32_t seen = 0;
    const char *cursor = expression ? expression : "";
    while (true) {
        cursor += strspn (cursor, " \t");
        size_t length = strcspn (cursor, " \t");
        if (length == 0)
            break;
        char *term = strndup (cursor, length);
        int rc = term ? s_parse_term (self, term, &seen, problem)
                      : ps_problem_set (problem, 0, "out of memory");
        free (term);
        if (rc) {
            ps_tapfilter_destroy (&self);
            return NULL;
        }
        cursor += length;
    }
    return self;
}

void
ps_tapfilter_destroy (ps_tapfilter_t **self_p)
{
    assert (self_p);
    free (*self_p);
    *self_p = NULL;
}

//  Whether value is in mask (any value when mask is 0)
static bool
s_in_mask (uint32_t mask, int value)
{
    return mask == 0 || (value >= 0 && value < 32 && (mask & (1u << value)));
}

static bool
s_match_keys (const ps_tapfilter_t *self, const ps_tap_record_t *record)
{
    if (self->nkeys == 0)
        return true;
    for (size_t i = 0; i < record->n_keys; i++)
        for (size_t j = 0; j < self->nkeys; j++)
            if (strcmp (record->keys[i]->key, self->keys[j]) == 0)
                return true;
    return false;
}

//  Whether value is within range (any value when it has no bounds)
static bool
s_in_range (const s_range_t *range, uint64_t value)
{
    return (!range->has_above || value > range->above) &&
           (!range->has_below || value < range->below);
}

static bool
s_match_latency (const ps_tapfilter_t *self, const ps_tap_record_t *record)
{
    if (!self->lat.has_above && !self->lat.has_below)
        return true;
    if (record->kind != PSMQ__TAP_KIND__TAP_REPLY)
        return false; //  only replies are timed
    return s_in_range (&self->lat, record->total_us);
}

static bool
s_match_status (const ps_tapfilter_t *self, const ps_tap_record_t *record)
{
    bool failed =
        record->status != PSMQ__ERR_CODE__ERR_NONE || record->kind == PSMQ__TAP_KIND__TAP_REJECT;
    return self->status == S_ANY || failed == (self->status == S_ERR);
}

bool
ps_tapfilter_wants_shard (const ps_tapfilter_t *self, uint32_t shard)
{
    assert (self);
    return s_in_ids (&self->shards, shard);
}

bool
ps_tapfilter_match (const ps_tapfilter_t *self, const ps_tap_record_t *record)
{
    assert (self);
    assert (record);
    return ps_tapfilter_wants_shard (self, record->shard) &&
           s_in_mask (self->kinds, record->kind) && s_in_mask (self->types, record->type) &&
           s_in_ids (&self->workers, record->worker) && s_match_keys (self, record) &&
           s_in_range (&self->bytes, record->bytes) && s_match_latency (self, record) &&
           s_match_status (self, record);
}

//  ---------------------------------------------------------------------
//  Topics

//  The values of a dimension to enumerate, in topic order: those in mask,
//  or all of them when mask is 0. Returns how many.
static size_t
s_members (uint32_t mask, const int *order, size_t count, int *members)
{
    size_t found = 0;
    for (size_t i = 0; i < count; i++)
        if (mask == 0 || (mask & (1u << order[i])))
            members[found++] = order[i];
    return found;
}

static void
s_append (char *topic, size_t *length, const char *text)
{
    int added = snprintf (topic + *length, PS_TAP_TOPIC_MAX - *length, "%s.", text);
    assert (added > 0 && *length + (size_t)added < PS_TAP_TOPIC_MAX);
    *length += (size_t)added;
}

//  Every prefix for one leading string ("" or "payload."): a product of
//  kinds, types and workers, as deep as the last constrained dimension
static size_t
s_topics (const ps_tapfilter_t *self, const char *lead,
          void (*subscribe) (const char *topic, void *arg), void *arg)
{
    static const int kind_order[] = {1, 2, 3, 4, 5, 6, 7};
    static const int type_order[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0}; //  "none" last
    int depth = self->workers.count ? 3 : self->types ? 2 : self->kinds ? 1 : 0;
    int kinds[7], types[10];
    size_t nkinds = depth >= 1 ? s_members (self->kinds, kind_order, 7, kinds) : 1;
    size_t ntypes = depth >= 2 ? s_members (self->types, type_order, 10, types) : 1;
    size_t nworkers = depth >= 3 ? self->workers.count : 1;

    size_t count = 0;
    for (size_t k = 0; k < nkinds; k++)
        for (size_t t = 0; t < ntypes; t++)
            for (size_t w = 0; w < nworkers; w++) {
                char topic[PS_TAP_TOPIC_MAX];
                size_t length = (size_t)snprintf (topic, sizeof topic, "%s", lead);
                if (depth >= 1)
                    s_append (topic, &length, ps_codec_tap_kind_name (kinds[k]));
                if (depth >= 2)
                    s_append (topic, &length, ps_codec_type_name (types[t]));
                if (depth >= 3) {
                    char rank[24];
                    snprintf (rank, sizeof rank, "%lld", (long long)self->workers.values[w]);
                    s_append (topic, &length, rank);
                }
                subscribe (topic, arg);
                count++;
            }
    return count;
}

size_t
ps_tapfilter_topics (const ps_tapfilter_t *self, bool payload,
                     void (*subscribe) (const char *topic, void *arg), void *arg)
{
    assert (self);
    assert (subscribe);
    size_t count = s_topics (self, "", subscribe, arg);
    if (payload)
        count += s_topics (self, "payload.", subscribe, arg);
    return count;
}
