/*  =========================================================================
    ps_published - the versions pulls are answered from (see ps_published.h)

    A czmq hash of version_t by key name. A key being created has no
    version yet (buf NULL) and remembers its INIT's command number; when
    that command is done and nothing was published, the INIT failed and
    the entry goes. Reply layout buffers (slices, their pointers, frames)
    grow to the largest reply and are reused.
    ========================================================================= */

#include "ps_published.h"
#include "ps_dtype.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ps_buf_t *buf;         //  latest published version, our reference;
                           //  NULL while its INIT is with the aggregator
    uint64_t size;         //  elements
    uint64_t version;      //  version number
    uint64_t init_command; //  while buf is NULL: the INIT's command number
    int dtype;             //  wire dtype, PS_DTYPE_*
    ps_buf_t *wire;        //  16-bit keys: a copy of some version in dtype
                           //  (our reference), NULL before the first pull
    uint64_t wire_version; //  the version wire holds
    uint64_t *wire_done;   //  its chunks of WIRE_CHUNK elements converted,
                           //  a bit each (allocated with wire)
} version_t;

//  The 16-bit copy is converted a chunk at a time, as the reply parts
//  that carry it go out (ps_published_fill): the first part is on the
//  wire while the next is converted, instead of after a pass over the key
#define WIRE_CHUNK ((uint64_t)PS_CHUNK_BYTES / sizeof (float))

struct ps_published_t {
    zhashx_t *versions;      //  key -> version_t, owned
    size_t creating;         //  of them, keys whose INIT is in flight
    ps_slice_t *slice_pool;  //  reply slices, reused
    ps_slice_t **slice_ptrs; //  pointers to them, for the envelope
    zmq_msg_t *reply_frames; //  a reply's frames, reused
    size_t capacity;         //  slices allocated
    uint64_t bytes;          //  of one version of every published key
};

static void
s_version_free (void **item_p)
{
    version_t *version = *item_p;
    if (version) {
        ps_buf_unref (&version->buf);
        ps_buf_unref (&version->wire);
        free (version->wire_done);
        free (version);
        *item_p = NULL;
    }
}

ps_published_t *
ps_published_new (void)
{
    ps_published_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->versions = zhashx_new ();
    if (!self->versions) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->versions, s_version_free);
    return self;
}

void
ps_published_destroy (ps_published_t **self_p)
{
    assert (self_p);
    ps_published_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->versions);
    free (self->slice_pool);
    free (self->slice_ptrs);
    free (self->reply_frames);
    free (self);
    *self_p = NULL;
}

static size_t
s_wire_words (const version_t *entry)
{
    return (size_t)((entry->size + WIRE_CHUNK - 1) / WIRE_CHUNK + 63) / 64;
}

//  Convert the chunks of entry's copy that [offset, offset + count)
//  touches and that are not yet
static void
s_wire_convert (version_t *entry, uint64_t offset, uint64_t count)
{
    if (count == 0)
        return;
    size_t element = ps_dtype_size (entry->dtype);
    for (uint64_t chunk = offset / WIRE_CHUNK; chunk <= (offset + count - 1) / WIRE_CHUNK;
         chunk++) {
        uint64_t bit = 1ull << (chunk % 64);
        if (entry->wire_done[chunk / 64] & bit)
            continue;
        uint64_t first = chunk * WIRE_CHUNK;
        uint64_t run = entry->size - first < WIRE_CHUNK ? entry->size - first : WIRE_CHUNK;
        ps_dtype_from_f32 ((char *)ps_buf_data (entry->wire) + first * element,
                           ps_buf_data (entry->buf) + first, (size_t)run, entry->dtype);
        entry->wire_done[chunk / 64] |= bit;
    }
}

void
ps_published_set (ps_published_t *self, const char *key, ps_buf_t *buf, uint64_t size,
                  uint64_t version)
{
    version_t *entry = zhashx_lookup (self->versions, key);
    if (!entry) {
        entry = calloc (1, sizeof *entry);
        assert (entry);
        zhashx_insert (self->versions, key, entry);
    }
    else if (!entry->buf)
        self->creating--;
    if (!entry->buf)
        self->bytes += size * sizeof (float);
    //  Frames that hold the copy of the version going away are whole
    //  before it goes, should a part not have been filled
    if (entry->wire && entry->wire_version == entry->version && !ps_buf_exclusive (entry->wire))
        s_wire_convert (entry, 0, entry->size);
    ps_buf_unref (&entry->buf);
    entry->buf = buf;
    entry->size = size;
    entry->version = version;
}

void
ps_published_creating (ps_published_t *self, const ps_envelope_t *init, uint64_t command)
{
    for (size_t i = 0; i < init->n_slices; i++) {
        const ps_slice_t *slice = init->slices[i];
        if (zhashx_lookup (self->versions, slice->key))
            continue;
        version_t *entry = calloc (1, sizeof *entry);
        assert (entry);
        entry->size = slice->total;
        entry->init_command = command;
        entry->dtype = (int)slice->dtype;
        zhashx_insert (self->versions, slice->key, entry);
        self->creating++;
    }
}

void
ps_published_forget_failed (ps_published_t *self, uint64_t done)
{
    if (!self->creating)
        return;
    zlistx_t *failed = zlistx_new ();
    assert (failed);
    for (version_t *entry = zhashx_first (self->versions); entry;
         entry = zhashx_next (self->versions))
        if (!entry->buf && entry->init_command <= done)
            zlistx_add_end (failed, (void *)zhashx_cursor (self->versions));
    for (const char *key = zlistx_first (failed); key; key = zlistx_next (failed)) {
        zhashx_delete (self->versions, key);
        self->creating--;
    }
    zlistx_destroy (&failed);
}

uint64_t
ps_published_bytes (const ps_published_t *self)
{
    return self->bytes;
}

void
ps_published_set_dtype (ps_published_t *self, const char *key, int dtype)
{
    version_t *entry = zhashx_lookup (self->versions, key);
    if (entry && entry->dtype != dtype) {
        entry->dtype = dtype;
        ps_buf_unref (&entry->wire);
        free (entry->wire_done);
        entry->wire_done = NULL;
    }
}

int
ps_published_dtype (ps_published_t *self, const char *key)
{
    version_t *entry = zhashx_lookup (self->versions, key);
    return entry ? entry->dtype : PS_DTYPE_F32;
}

//  A 16-bit copy for entry's version, its chunks not converted yet: the
//  copy's buffer reused when no frame holds it. -1 when out of memory.
static int
s_wire_prepare (version_t *entry)
{
    if (entry->wire && entry->wire_version == entry->version)
        return 0;
    if (entry->wire && !ps_buf_exclusive (entry->wire))
        ps_buf_unref (&entry->wire);
    if (!entry->wire_done) {
        entry->wire_done = calloc (s_wire_words (entry), sizeof (uint64_t));
        if (!entry->wire_done)
            return -1;
    }
    if (!entry->wire) {
        //  Two 16-bit elements to a float of the buffer
        entry->wire = ps_buf_new ((size_t)(entry->size + 1) / 2);
        if (!entry->wire)
            return -1;
    }
    memset (entry->wire_done, 0, s_wire_words (entry) * sizeof (uint64_t));
    entry->wire_version = entry->version;
    return 0;
}

void
ps_published_fill (ps_published_t *self, ps_slice_t *const *slices, size_t nslices)
{
    for (size_t i = 0; i < nslices; i++) {
        if (slices[i]->dtype == PSMQ__DTYPE__F32 || slices[i]->count == 0)
            continue;
        version_t *entry = zhashx_lookup (self->versions, slices[i]->key);
        if (entry && entry->wire && entry->wire_version == entry->version)
            s_wire_convert (entry, slices[i]->offset, slices[i]->count);
    }
}

bool
ps_published_size (ps_published_t *self, const char *key, uint64_t *size)
{
    version_t *entry = zhashx_lookup (self->versions, key);
    *size = entry ? entry->size : 0;
    return entry != NULL;
}

size_t
ps_published_keys (const ps_published_t *self)
{
    return zhashx_size (self->versions) - self->creating;
}

//  The range a PULL slice asks for, checked against the key
static int
s_pull_range (ps_published_t *self, const ps_slice_t *slice, version_t **entry_p, uint64_t *count,
              ps_problem_t *problem)
{
    version_t *entry = zhashx_lookup (self->versions, slice->key);
    if (!entry)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_UNKNOWN_KEY, "pull of unknown key '%s'",
                               slice->key);
    if (slice->offset > entry->size || slice->count > entry->size - slice->offset)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                               "pull of key '%s' [%" PRIu64 ", +%" PRIu64 ") beyond its %" PRIu64
                               " elements",
                               slice->key, slice->offset, slice->count, entry->size);
    if ((int)slice->dtype != entry->dtype)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                               "pull of key '%s' in %s: the key travels in %s (its INIT's "
                               "dtype)",
                               slice->key, ps_dtype_name ((int)slice->dtype),
                               ps_dtype_name (entry->dtype));
    *entry_p = entry;
    *count = slice->count ? slice->count : entry->size - slice->offset;
    return 0;
}

static uint64_t
s_chunks (uint64_t count)
{
    const uint64_t chunk = PS_CHUNK_BYTES / sizeof (float);
    return count == 0 ? 1 : (count + chunk - 1) / chunk;
}

int
ps_published_check_pull (ps_published_t *self, const ps_envelope_t *request, ps_problem_t *problem)
{
    uint64_t slices = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < request->n_slices; i++) {
        version_t *entry = NULL;
        uint64_t count = 0;
        if (s_pull_range (self, request->slices[i], &entry, &count, problem))
            return -1;
        slices += s_chunks (count);
        bytes += count * ps_dtype_size (entry->dtype);
    }
    if (slices > PS_MAX_SLICES || bytes > (uint64_t)PS_MAX_MESSAGE_BYTES)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE,
                               "pull reply would need %" PRIu64 " frames and %" PRIu64
                               " bytes (limits %d, %lld): pull fewer keys at once",
                               slices, bytes, PS_MAX_SLICES, PS_MAX_MESSAGE_BYTES);
    return 0;
}

static int
s_reserve (ps_published_t *self, size_t count)
{
    if (count <= self->capacity)
        return 0;
    ps_slice_t *pool = realloc (self->slice_pool, count * sizeof *pool);
    if (!pool)
        return -1;
    self->slice_pool = pool;
    ps_slice_t **ptrs = realloc (self->slice_ptrs, count * sizeof *ptrs);
    if (!ptrs)
        return -1;
    self->slice_ptrs = ptrs;
    zmq_msg_t *frames = realloc (self->reply_frames, count * sizeof *frames);
    if (!frames)
        return -1;
    self->reply_frames = frames;
    self->capacity = count;
    return 0;
}

//  A reply frame over elements [offset, offset + count) of entry's 16-bit
//  copy; with unsent, charging it the whole copy. 0, or -1.
static int
s_wire_frame (version_t *entry, uint64_t offset, uint64_t count, ps_unsent_t *unsent,
              zmq_msg_t *frame)
{
    size_t element = ps_dtype_size (entry->dtype);
    return unsent ? ps_unsent_frame_bytes (unsent, entry->wire, offset * element, count * element,
                                           entry->size * element, frame)
                  : ps_buf_frame_bytes (entry->wire, offset * element, count * element, frame);
}

ssize_t
ps_published_pull_reply (ps_published_t *self, const ps_envelope_t *request, ps_unsent_t *unsent,
                         ps_slice_t ***slices, zmq_msg_t **frames, ps_problem_t *problem)
{
    //  Checked when the request came; a key may have failed its INIT since
    size_t total = 0;
    for (size_t i = 0; i < request->n_slices; i++) {
        version_t *entry = NULL;
        uint64_t count = 0;
        if (s_pull_range (self, request->slices[i], &entry, &count, problem))
            return -1;
        if (!entry->buf)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_UNKNOWN_KEY,
                                   "pull of key '%s', whose init failed", request->slices[i]->key);
        if (entry->dtype != PS_DTYPE_F32 && s_wire_prepare (entry))
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                                   "out of memory for the %s copy of key '%s'",
                                   ps_dtype_name (entry->dtype), request->slices[i]->key);
        total += s_chunks (count);
    }
    if (s_reserve (self, total))
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL, "out of memory for a pull reply");
    const uint64_t chunk = PS_CHUNK_BYTES / sizeof (float);
    size_t used = 0;
    for (size_t i = 0; i < request->n_slices; i++) {
        version_t *entry = NULL;
        uint64_t count = 0;
        const ps_slice_t *asked = request->slices[i];
        s_pull_range (self, asked, &entry, &count, NULL);
        uint64_t offset = asked->offset;
        do {
            uint64_t run = count < chunk ? count : chunk;
            ps_slice_t *slice = &self->slice_pool[used];
            psmq__slice__init (slice);
            slice->key = asked->key;
            slice->offset = offset;
            slice->count = run;
            slice->total = entry->size;
            slice->dtype = (Psmq__DType)entry->dtype;
            self->slice_ptrs[used] = slice;
            zmq_msg_t *frame = &self->reply_frames[used];
            //  The slice's last frame holds the version longest
            int rc = run && entry->dtype != PS_DTYPE_F32
                         ? s_wire_frame (entry, offset, run, count == run ? unsent : NULL, frame)
                     : run == 0 ? -1
                     : unsent && count == run
                         ? ps_unsent_frame (unsent, entry->buf, offset, run,
                                            entry->size * sizeof (float), frame)
                         : ps_buf_frame (entry->buf, offset, run, frame);
            if (rc)
                zmq_msg_init (frame);
            used++;
            offset += run;
            count -= run;
        } while (count > 0);
    }
    *slices = self->slice_ptrs;
    *frames = self->reply_frames;
    return (ssize_t)used;
}
