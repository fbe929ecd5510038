/*  =========================================================================
    ps_published - the parameter versions the ROUTER loop answers pulls from

    The aggregation thread owns the store; after every change it hands the
    ROUTER loop one reference to the key's new, immutable version (a
    ps_buf_t). This table keeps the latest reference per key, so pulls are
    answered by reference, zero-copy, without asking the aggregation
    thread. It also knows the keys an INIT is creating (their size, and the
    command number of that INIT), so requests pipelined behind an INIT are
    checked against the size it asked for.

    A key whose INIT named a 16-bit wire dtype (BF16, F16) is answered
    from a 16-bit copy of its version, made once per version (not per
    pull) and kept until the next one; the copy's buffer is reused when no
    frame holds it any more. The copy is converted a chunk at a time by
    ps_published_fill, which the sender calls for each part of a reply
    just before sending it, so that the first part is on the wire while
    the next is converted.

    Owns one reference per published version and the reply layout buffers.
    Only the ROUTER loop's thread may call it.
    ========================================================================= */

#ifndef PS_PUBLISHED_H_INCLUDED
#define PS_PUBLISHED_H_INCLUDED

#include "ps_buf.h"
#include "ps_codec.h"
#include "ps_unsent.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ps_published_t ps_published_t;

ps_published_t *ps_published_new (void);
void ps_published_destroy (ps_published_t **self_p);

//  The newest version of key: buf (one reference, handed over) of size
//  elements, numbered version
void ps_published_set (ps_published_t *self, const char *key, ps_buf_t *buf, uint64_t size,
                       uint64_t version);
//  The keys init names that nobody published yet are being created by the
//  aggregation command numbered command
void ps_published_creating (ps_published_t *self, const ps_envelope_t *init, uint64_t command);
//  Forget the keys whose creating command is done (<= done) but which were
//  never published: the aggregation thread refused their INIT
void ps_published_forget_failed (ps_published_t *self, uint64_t done);
//  The wire dtype (PS_DTYPE_*) of a key published or being created; the
//  aggregation thread's (after a RESTORE: the checkpoint's) wins
void ps_published_set_dtype (ps_published_t *self, const char *key, int dtype);
//  key's wire dtype, PS_DTYPE_F32 for an unknown key
int ps_published_dtype (ps_published_t *self, const char *key);
//  Whether key is published or being created; its size in *size
bool ps_published_size (ps_published_t *self, const char *key, uint64_t *size);
//  Keys published (not those still being created)
size_t ps_published_keys (const ps_published_t *self);
//  Bytes of one version of every published key: the model's size
uint64_t ps_published_bytes (const ps_published_t *self);

//  Check a PULL against the keys and the reply limits. 0, or -1 with
//  ERR_UNKNOWN_KEY, ERR_SIZE (a range beyond the key, or a slice whose
//  dtype is not the key's) or ERR_TOO_LARGE in problem.
int ps_published_check_pull (ps_published_t *self, const ps_envelope_t *request,
                             ps_problem_t *problem);
//  Lay out the reply to a checked PULL: slices of at most PS_CHUNK_BYTES
//  (*slices, valid until the next call) and, for each, a frame referring
//  into the published version (*frames, the caller sends or closes each;
//  a slice of 0 elements has an empty frame). With unsent, the frame that
//  ends each slice charges it the bytes of the whole version it pins
//  (see ps_unsent.h). Returns the number of
//  slices, or -1 with problem set (a key whose INIT failed meanwhile: ERR_
//  UNKNOWN_KEY; out of memory: ERR_FULL).
ssize_t ps_published_pull_reply (ps_published_t *self, const ps_envelope_t *request,
                                 ps_unsent_t *unsent, ps_slice_t ***slices, zmq_msg_t **frames,
                                 ps_problem_t *problem);
//  Fill the frames of a BF16 or F16 key's reply slices (the 16-bit copy
//  of the chunks they cover, each converted once per version): call it on
//  each part of a reply before the part is sent (or tapped), before any
//  other call changes the table. Nothing for f32 slices. Should a part
//  be left unfilled, its frames are filled when the next version is set.
void ps_published_fill (ps_published_t *self, ps_slice_t *const *slices, size_t nslices);

#endif
