/*  =========================================================================
    test_codec - the envelope codec: round trips, every rejection, frames

    Envelopes are built with the generated protobuf-c initialisers, packed
    with ps_codec_encode and read back with ps_codec_decode, exactly as the
    broker and the worker library do. Rejections are checked for their
    PSMQ__ERR_CODE__* and for a message that names the bad value. The fuzz
    tests use a seeded PRNG so that a failure reproduces; they check the
    invariants a decoded envelope must satisfy with code of their own, not
    with the codec's helpers.

    usage: build/test_codec [--filter 'codec/<test>']
    ========================================================================= */

#include "ps_codec.h"

#include <criterion/criterion.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>

#ifdef __SANITIZE_ADDRESS__
//  From <sanitizer/allocator_interface.h>, which GCC does not install
size_t __sanitizer_get_current_allocated_bytes (void);
#endif

//  A slice of F32 elements
static ps_slice_t
s_slice (const char *key, uint64_t offset, uint64_t count, uint64_t total)
{
    ps_slice_t slice = PSMQ__SLICE__INIT;
    slice.key = (char *)key;
    slice.offset = offset;
    slice.count = count;
    slice.total = total;
    return slice;
}

//  A version-1 envelope of this type
static ps_envelope_t
s_envelope (int type)
{
    ps_envelope_t envelope = PSMQ__ENVELOPE__INIT;
    envelope.version = PS_PROTOCOL_VERSION;
    envelope.type = type;
    return envelope;
}

//  Encode then decode with codec; the decoded envelope or NULL
static ps_envelope_t *
s_round_trip (ps_codec_t *codec, const ps_envelope_t *envelope, ps_problem_t *problem)
{
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode (envelope, &msg), 0);
    ps_envelope_t *decoded =
        ps_codec_decode (codec, zmq_msg_data (&msg), zmq_msg_size (&msg), problem);
    zmq_msg_close (&msg);
    return decoded;
}

//  The envelope must be rejected with code, and the message must contain named
static void
s_assert_rejected (const ps_envelope_t *envelope, int code, const char *named, const char *what)
{
    //  Done with the codec before asserting: a failure leaks nothing
    ps_codec_t *codec = ps_codec_new ();
    ps_problem_t problem = {0};
    bool decoded = s_round_trip (codec, envelope, &problem) != NULL;
    ps_codec_destroy (&codec);
    cr_assert_not (decoded, "%s: decoded, %s rejection expected", what, ps_codec_error_name (code));
    cr_assert_eq (problem.code, code, "%s: code %s (%s), %s expected", what,
                  ps_codec_error_name (problem.code), problem.message, ps_codec_error_name (code));
    cr_assert_neq (problem.message[0], '\0', "%s: empty problem message", what);
    cr_assert_not_null (strstr (problem.message, named), "%s: message '%s' does not name '%s'",
                        what, problem.message, named);
}

//  The envelope must be rejected as too large, its message naming the
//  value over the limit as format (with one %d) writes it
static void
s_assert_too_large (const ps_envelope_t *envelope, const char *format, int over, const char *what)
{
    char named[64];
    snprintf (named, sizeof named, format, over);
    s_assert_rejected (envelope, PSMQ__ERR_CODE__ERR_TOO_LARGE, named, what);
}

//  The envelope must decode
static void
s_assert_accepted (const ps_envelope_t *envelope, const char *what)
{
    ps_codec_t *codec = ps_codec_new ();
    ps_problem_t problem = {0};
    bool decoded = s_round_trip (codec, envelope, &problem) != NULL;
    ps_codec_destroy (&codec);
    cr_assert (decoded, "%s: rejected: %s", what, problem.message);
}

Test (codec, usage)
{
    //  A worker pushes the gradient of one parameter: the envelope says
    //  what follows, the tensor bytes travel as their own frame
    float gradient[3] = {0.5f, -1, 2};
    ps_slice_t slice = s_slice ("layer1.w", 0, 3, 3);
    ps_slice_t *slices[] = {&slice};
    ps_envelope_t push = s_envelope (PSMQ__MSG_TYPE__PUSH);
    push.seq = 17;
    push.worker = 2;
    push.clock = 5;
    push.n_slices = 1;
    push.slices = slices;
    zmq_msg_t wire;
    cr_assert_eq (ps_codec_encode (&push, &wire), 0);
    zmq_msg_t frame;
    zmq_msg_init_size (&frame, sizeof gradient);
    memcpy (zmq_msg_data (&frame), gradient, sizeof gradient);

    //  The broker decodes and validates the envelope, then its frames
    ps_codec_t *codec = ps_codec_new ();
    cr_assert_not_null (codec);
    ps_problem_t problem;
    ps_envelope_t *request =
        ps_codec_decode (codec, zmq_msg_data (&wire), zmq_msg_size (&wire), &problem);
    cr_assert_not_null (request, "%s", problem.message);
    cr_assert_eq (request->type, PSMQ__MSG_TYPE__PUSH);
    cr_assert_str_eq (ps_codec_type_name (request->type), "push");
    cr_assert_eq (request->clock, 5);
    cr_assert_eq (request->n_slices, 1);
    cr_assert_str_eq (request->slices[0]->key, "layer1.w");
    cr_assert_eq (ps_codec_frames_expected (request), 1);
    cr_assert_eq (ps_codec_check_frames (request, &frame, 1, &problem), 0, "%s", problem.message);

    //  ... and answers it
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, request);
    reply.clock = request->clock;
    zmq_msg_t answer;
    cr_assert_eq (ps_codec_encode (&reply, &answer), 0);

    //  A request that does not parse gets an ERROR envelope
    ps_envelope_t *bad = ps_codec_decode (codec, "\xff\xff", 2, &problem);
    cr_assert_null (bad);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_MALFORMED);
    zmq_msg_t error;
    cr_assert_eq (ps_codec_encode_error (NULL, problem.code, problem.message, 0, &error), 0);

    //  The worker reads both answers with a codec of its own
    ps_codec_t *worker = ps_codec_new ();
    ps_envelope_t *ack =
        ps_codec_decode (worker, zmq_msg_data (&answer), zmq_msg_size (&answer), &problem);
    cr_assert_not_null (ack, "%s", problem.message);
    cr_assert (ack->reply);
    cr_assert_eq (ack->seq, 17);
    cr_assert_eq (ack->clock, 5);
    ps_envelope_t *refused =
        ps_codec_decode (worker, zmq_msg_data (&error), zmq_msg_size (&error), &problem);
    cr_assert_not_null (refused, "%s", problem.message);
    cr_assert_eq (refused->type, PSMQ__MSG_TYPE__ERROR);
    cr_assert_eq (refused->error->code, PSMQ__ERR_CODE__ERR_MALFORMED);
    cr_assert_str_eq (ps_codec_error_name (refused->error->code), "malformed");

    zmq_msg_close (&wire);
    zmq_msg_close (&frame);
    zmq_msg_close (&answer);
    zmq_msg_close (&error);
    ps_codec_destroy (&worker);
    ps_codec_destroy (&codec);
    cr_assert_null (codec);
    ps_codec_destroy (&codec);
}

//  An envelope with every field set, used by the round trip and the fuzz
typedef struct {
    ps_slice_t slice[3];
    ps_slice_t *slices[3];
    int64_t clocks[4];
    Psmq__Hello hello;
    Psmq__Optim optim;
    Psmq__Error error;
    ps_envelope_t envelope;
} full_t;

static void
s_full (full_t *full)
{
    full->slice[0] = s_slice ("layer1/w", 0, 100, 1000);
    full->slice[1] = s_slice ("layer1/b", 10, 0, 10);
    full->slice[2] = s_slice ("emb.table:0", 1ULL << 31, 5, 1ULL << 32);
    for (int i = 0; i < 3; i++)
        full->slices[i] = &full->slice[i];
    full->clocks[0] = -1;
    full->clocks[1] = 0;
    full->clocks[2] = 5;
    full->clocks[3] = INT64_MAX;
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = 4;
    hello.staleness = -1;
    hello.session = 0x0123456789abcdefULL;
    hello.heartbeat_ms = 100;
    hello.timeout_ms = 2500;
    hello.n_clocks = 4;
    hello.clocks = full->clocks;
    hello.live = 3;
    full->hello = hello;
    Psmq__Optim optim = PSMQ__OPTIM__INIT;
    optim.kind = PSMQ__OPTIM_KIND__OPT_ADAM;
    optim.lr = 0.01f;
    optim.momentum = 0.5f;
    optim.beta1 = 0.9f;
    optim.beta2 = 0.999f;
    optim.eps = 1e-8f;
    full->optim = optim;
    Psmq__Error error = PSMQ__ERROR__INIT;
    error.code = PSMQ__ERR_CODE__ERR_CLOCK;
    error.message = "clock 7 is behind 9";
    full->error = error;
    full->envelope = s_envelope (PSMQ__MSG_TYPE__PUSH);
    full->envelope.seq = 12345678901ULL;
    full->envelope.worker = 7;
    full->envelope.clock = 42;
    full->envelope.n_slices = 3;
    full->envelope.slices = full->slices;
    full->envelope.grad_count = 3;
    full->envelope.session = 0xfeedfacecafeULL;
    full->envelope.hello = &full->hello;
    full->envelope.optim = &full->optim;
    full->envelope.error = &full->error;
    full->envelope.info = "{\"keys\": 2}";
    full->envelope.min_clock = 40;
}

Test (codec, round_trip_keeps_every_field)
{
    full_t full;
    s_full (&full);
    const ps_envelope_t *sent = &full.envelope;
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode (sent, &msg), 0);
    cr_assert_eq (zmq_msg_size (&msg), psmq__envelope__get_packed_size (sent));

    ps_codec_t *codec = ps_codec_new ();
    ps_problem_t problem;
    ps_envelope_t *got =
        ps_codec_decode (codec, zmq_msg_data (&msg), zmq_msg_size (&msg), &problem);
    cr_assert_not_null (got, "%s", problem.message);
    cr_assert_eq (got->version, 1);
    cr_assert_eq (got->type, PSMQ__MSG_TYPE__PUSH);
    cr_assert_not (got->reply);
    cr_assert_eq (got->seq, 12345678901ULL);
    cr_assert_eq (got->worker, 7);
    cr_assert_eq (got->clock, 42);
    cr_assert_eq (got->grad_count, 3);
    cr_assert_eq (got->session, 0xfeedfacecafeULL);
    cr_assert_eq (got->min_clock, 40);
    cr_assert_str_eq (got->info, "{\"keys\": 2}");
    cr_assert_eq (got->n_slices, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq (got->slices[i]->key, full.slice[i].key);
        cr_assert_eq (got->slices[i]->offset, full.slice[i].offset, "slice %zu", i);
        cr_assert_eq (got->slices[i]->count, full.slice[i].count, "slice %zu", i);
        cr_assert_eq (got->slices[i]->total, full.slice[i].total, "slice %zu", i);
        cr_assert_eq (got->slices[i]->dtype, PSMQ__DTYPE__F32);
    }
    cr_assert_not_null (got->hello);
    cr_assert_eq (got->hello->world_size, 4);
    cr_assert_eq (got->hello->staleness, -1);
    cr_assert_eq (got->hello->session, 0x0123456789abcdefULL);
    cr_assert_eq (got->hello->heartbeat_ms, 100);
    cr_assert_eq (got->hello->timeout_ms, 2500);
    cr_assert_eq (got->hello->live, 3);
    cr_assert_eq (got->hello->n_clocks, 4);
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq (got->hello->clocks[i], full.clocks[i], "clock %zu", i);
    cr_assert_not_null (got->optim);
    cr_assert_eq (got->optim->kind, PSMQ__OPTIM_KIND__OPT_ADAM);
    cr_assert (got->optim->lr == 0.01f && got->optim->momentum == 0.5f);
    cr_assert (got->optim->beta1 == 0.9f && got->optim->beta2 == 0.999f);
    cr_assert (got->optim->eps == 1e-8f);
    cr_assert_not_null (got->error);
    cr_assert_eq (got->error->code, PSMQ__ERR_CODE__ERR_CLOCK);
    cr_assert_str_eq (got->error->message, "clock 7 is behind 9");

    //  Encoding what was decoded gives the same bytes
    zmq_msg_t again;
    cr_assert_eq (ps_codec_encode (got, &again), 0);
    cr_assert_eq (zmq_msg_size (&again), zmq_msg_size (&msg));
    cr_assert_eq (memcmp (zmq_msg_data (&again), zmq_msg_data (&msg), zmq_msg_size (&msg)), 0);
    zmq_msg_close (&again);
    zmq_msg_close (&msg);
    ps_codec_destroy (&codec);
}

Test (codec, reply_to_copies_type_seq_worker_only)
{
    full_t full;
    s_full (&full);
    full.envelope.type = PSMQ__MSG_TYPE__PULL;
    //  A reply that held another message before: reply_to resets it
    ps_envelope_t reply;
    memset (&reply, 0x5a, sizeof reply);
    ps_codec_reply_to (&reply, &full.envelope);
    cr_assert (reply.reply);
    cr_assert_eq (reply.version, PS_PROTOCOL_VERSION);
    cr_assert_eq (reply.type, PSMQ__MSG_TYPE__PULL);
    cr_assert_eq (reply.seq, 12345678901ULL);
    cr_assert_eq (reply.worker, 7);
    cr_assert_eq (reply.clock, 0);
    cr_assert_eq (reply.n_slices, 0);
    cr_assert_eq (reply.grad_count, 0);
    cr_assert_eq (reply.session, 0);
    cr_assert_eq (reply.min_clock, 0);
    cr_assert_null (reply.hello);
    cr_assert_null (reply.optim);
    cr_assert_null (reply.error);

    //  It goes over the wire as a reply to that request
    ps_codec_t *codec = ps_codec_new ();
    ps_problem_t problem;
    ps_envelope_t *got = s_round_trip (codec, &reply, &problem);
    cr_assert_not_null (got, "%s", problem.message);
    cr_assert (got->reply);
    cr_assert_eq (got->type, PSMQ__MSG_TYPE__PULL);
    cr_assert_eq (got->seq, 12345678901ULL);
    cr_assert_eq (got->worker, 7);
    cr_assert_null (got->error);
    ps_codec_destroy (&codec);
}

Test (codec, encode_error_decodes_with_code_and_message)
{
    ps_envelope_t request = s_envelope (PSMQ__MSG_TYPE__INIT);
    request.seq = 99;
    request.worker = 3;
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode_error (&request, PSMQ__ERR_CODE__ERR_KEY_EXISTS,
                                         "key 'w' exists with 10 elements, not 12", 0, &msg),
                  0);
    ps_codec_t *codec = ps_codec_new ();
    ps_problem_t problem;
    ps_envelope_t *got =
        ps_codec_decode (codec, zmq_msg_data (&msg), zmq_msg_size (&msg), &problem);
    zmq_msg_close (&msg);
    cr_assert_not_null (got, "%s", problem.message);
    cr_assert_eq (got->version, PS_PROTOCOL_VERSION);
    cr_assert_eq (got->type, PSMQ__MSG_TYPE__ERROR);
    cr_assert (got->reply);
    cr_assert_eq (got->seq, 99);
    cr_assert_eq (got->worker, 3);
    cr_assert_not_null (got->error);
    cr_assert_eq (got->error->code, PSMQ__ERR_CODE__ERR_KEY_EXISTS);
    cr_assert_str_eq (got->error->message, "key 'w' exists with 10 elements, not 12");

    //  Without a request (it did not parse): seq and worker are 0
    cr_assert_eq (ps_codec_encode_error (NULL, PSMQ__ERR_CODE__ERR_VERSION, "version 2", 0, &msg),
                  0);
    got = ps_codec_decode (codec, zmq_msg_data (&msg), zmq_msg_size (&msg), &problem);
    zmq_msg_close (&msg);
    cr_assert_not_null (got, "%s", problem.message);
    cr_assert_eq (got->type, PSMQ__MSG_TYPE__ERROR);
    cr_assert (got->reply);
    cr_assert_eq (got->seq, 0);
    cr_assert_eq (got->worker, 0);
    cr_assert_eq (got->error->code, PSMQ__ERR_CODE__ERR_VERSION);
    cr_assert_str_eq (got->error->message, "version 2");

    //  The longest problem message still makes a valid error envelope
    ps_problem_t longest;
    memset (longest.message, 'x', sizeof longest.message - 1);
    longest.message[sizeof longest.message - 1] = '\0';
    cr_assert_eq (
        ps_codec_encode_error (&request, PSMQ__ERR_CODE__ERR_FULL, longest.message, 0, &msg), 0);
    got = ps_codec_decode (codec, zmq_msg_data (&msg), zmq_msg_size (&msg), &problem);
    zmq_msg_close (&msg);
    cr_assert_not_null (got, "%s", problem.message);
    cr_assert_eq (strlen (got->error->message), PS_MAX_ERROR_LEN - 1);
    ps_codec_destroy (&codec);
}

Test (codec, encode_heartbeat_names_worker_and_session)
{
    ps_codec_t *codec = ps_codec_new ();
    zmq_msg_t beat;
    cr_assert_eq (ps_codec_encode_heartbeat (7, 0x0123456789abcdefULL, &beat), 0);
    ps_problem_t problem;
    const ps_envelope_t *decoded =
        ps_codec_decode (codec, zmq_msg_data (&beat), zmq_msg_size (&beat), &problem);
    cr_assert (decoded, "%s", problem.message);
    cr_assert_eq (decoded->type, PSMQ__MSG_TYPE__HEARTBEAT);
    cr_assert_eq (decoded->worker, 7);
    cr_assert_eq (decoded->session, 0x0123456789abcdefULL);
    cr_assert_eq (decoded->version, PS_PROTOCOL_VERSION);
    cr_assert_not (decoded->reply);
    cr_assert_eq (decoded->n_slices, 0);
    zmq_msg_close (&beat);
    ps_codec_destroy (&codec);
}

Test (codec, rejects_garbage_and_truncation)
{
    ps_codec_t *codec = ps_codec_new ();
    ps_problem_t problem = {0};
    //  An unterminated varint tag
    const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff};
    cr_assert_null (ps_codec_decode (codec, garbage, sizeof garbage, &problem));
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_MALFORMED, "%s", problem.message);
    cr_assert_not_null (strstr (problem.message, "4 bytes"), "%s", problem.message);

    //  A valid envelope cut short by one byte
    full_t full;
    s_full (&full);
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode (&full.envelope, &msg), 0);
    problem.code = 0;
    cr_assert_null (
        ps_codec_decode (codec, zmq_msg_data (&msg), zmq_msg_size (&msg) - 1, &problem));
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_MALFORMED, "%s", problem.message);
    //  ... and whole, after the failures, it decodes
    cr_assert_not_null (ps_codec_decode (codec, zmq_msg_data (&msg), zmq_msg_size (&msg), &problem),
                        "%s", problem.message);
    zmq_msg_close (&msg);

    //  Nothing at all is an envelope of version 0
    problem.code = 0;
    cr_assert_null (ps_codec_decode (codec, "", 0, &problem));
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_VERSION, "%s", problem.message);
    ps_codec_destroy (&codec);
}

Test (codec, rejects_version_and_type)
{
    ps_envelope_t envelope = s_envelope (PSMQ__MSG_TYPE__HELLO);
    s_assert_accepted (&envelope, "version 1");
    envelope.version = 2;
    s_assert_rejected (&envelope, PSMQ__ERR_CODE__ERR_VERSION, "version 2", "version 2");
    envelope.version = 0;
    s_assert_rejected (&envelope, PSMQ__ERR_CODE__ERR_VERSION, "version 0", "version 0");

    envelope = s_envelope (PSMQ__MSG_TYPE__MSG_NONE);
    s_assert_rejected (&envelope, PSMQ__ERR_CODE__ERR_TYPE, "type 0", "type 0");
    envelope.type = 99;
    s_assert_rejected (&envelope, PSMQ__ERR_CODE__ERR_TYPE, "99", "type 99");
    envelope.type = PSMQ__MSG_TYPE__ERROR + 1;
    s_assert_rejected (&envelope, PSMQ__ERR_CODE__ERR_TYPE, "10", "type 10");
    envelope.type = -1;
    s_assert_rejected (&envelope, PSMQ__ERR_CODE__ERR_TYPE, "-1", "type -1");
    //  Every type of the protocol passes
    for (int type = PSMQ__MSG_TYPE__HELLO; type <= PSMQ__MSG_TYPE__ERROR; type++) {
        envelope.type = type;
        s_assert_accepted (&envelope, ps_codec_type_name (type));
    }
}

//  An INFO reply whose JSON makes the envelope exactly size bytes
static ps_envelope_t
s_envelope_of_size (size_t size, char *info)
{
    ps_envelope_t envelope = s_envelope (PSMQ__MSG_TYPE__INFO);
    envelope.reply = true;
    envelope.info = info;
    size_t length = size - 16;
    for (;;) {
        memset (info, 'j', length);
        info[length] = '\0';
        size_t packed = psmq__envelope__get_packed_size (&envelope);
        if (packed == size)
            return envelope;
        cr_assert (packed < size, "cannot make an envelope of %zu bytes", size);
        length += size - packed;
    }
}

Test (codec, rejects_envelope_over_the_size_limit)
{
    char *info = malloc (PS_MAX_ENVELOPE_BYTES + 1);
    ps_envelope_t envelope = s_envelope_of_size (PS_MAX_ENVELOPE_BYTES, info);
    s_assert_accepted (&envelope, "envelope at the limit");
    envelope = s_envelope_of_size (PS_MAX_ENVELOPE_BYTES + 1, info);
    s_assert_too_large (&envelope, "%d bytes", PS_MAX_ENVELOPE_BYTES + 1,
                        "envelope over the limit");
    free (info);
}

Test (codec, rejects_too_many_slices)
{
    static ps_slice_t slice[PS_MAX_SLICES + 1];
    static ps_slice_t *slices[PS_MAX_SLICES + 1];
    for (size_t i = 0; i <= PS_MAX_SLICES; i++) {
        slice[i] = s_slice ("k", i, 1, PS_MAX_SLICES + 1);
        slices[i] = &slice[i];
    }
    ps_envelope_t pull = s_envelope (PSMQ__MSG_TYPE__PULL);
    pull.slices = slices;
    pull.n_slices = PS_MAX_SLICES;
    s_assert_accepted (&pull, "PS_MAX_SLICES slices");
    pull.n_slices = PS_MAX_SLICES + 1;
    s_assert_too_large (&pull, "%d slices", PS_MAX_SLICES + 1, "too many slices");
}

Test (codec, rejects_bad_keys)
{
    char longest[PS_MAX_KEY_LEN + 2];
    memset (longest, 'k', PS_MAX_KEY_LEN + 1);
    longest[PS_MAX_KEY_LEN + 1] = '\0';
    ps_slice_t good = s_slice ("ok", 0, 1, 1);
    ps_slice_t bad = s_slice ("", 0, 1, 1);
    ps_slice_t *slices[] = {&good, &bad};
    ps_envelope_t pull = s_envelope (PSMQ__MSG_TYPE__PULL);
    pull.slices = slices;
    pull.n_slices = 2;

    //  The bad key is the second one: every slice is checked
    s_assert_rejected (&pull, PSMQ__ERR_CODE__ERR_MALFORMED, "empty", "empty key");
    bad.key = "layer 1";
    s_assert_rejected (&pull, PSMQ__ERR_CODE__ERR_MALFORMED, "0x20", "key with a space");
    bad.key = "tab\there";
    s_assert_rejected (&pull, PSMQ__ERR_CODE__ERR_MALFORMED, "0x09", "key with a tab");
    bad.key = "bell\x01";
    s_assert_rejected (&pull, PSMQ__ERR_CODE__ERR_MALFORMED, "0x01", "key with 0x01");
    bad.key = "del\x7f";
    s_assert_rejected (&pull, PSMQ__ERR_CODE__ERR_MALFORMED, "0x7f", "key with DEL");
    bad.key = "caf\xc3\xa9";
    s_assert_rejected (&pull, PSMQ__ERR_CODE__ERR_MALFORMED, "0xc3", "key with UTF-8");
    bad.key = longest;
    s_assert_too_large (&pull, "%d", PS_MAX_KEY_LEN, "key too long");

    //  The whole printable range, and exactly PS_MAX_KEY_LEN bytes, pass
    longest[PS_MAX_KEY_LEN] = '\0';
    bad.key = longest;
    s_assert_accepted (&pull, "key of PS_MAX_KEY_LEN bytes");
    char printable[0x7f - 0x21 + 1];
    for (int c = 0x21; c < 0x7f; c++)
        printable[c - 0x21] = (char)c;
    printable[sizeof printable - 1] = '\0';
    bad.key = printable;
    s_assert_accepted (&pull, "every printable byte");
    ps_problem_t problem;
    cr_assert_eq (ps_codec_check_key (printable, &problem), 0);
    cr_assert_eq (ps_codec_check_key ("a b", &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_MALFORMED);
}

Test (codec, rejects_key_with_nul_byte)
{
    //  A PULL whose key is the 3 bytes "a\0b", written byte by byte
    //  because protobuf-c cannot pack such a string
    // clang-format off
    const unsigned char wire[] = {
        0x08, 0x01,                     //  version 1
        0x10, PSMQ__MSG_TYPE__PULL,     //  type
        0x3a, 0x07,                     //  slices, 7 bytes
        0x0a, 0x03, 'a', 0x00, 'b',     //  key "a\0b"
        0x18, 0x01,                     //  count 1
    };
    // clang-format on
    ps_codec_t *codec = ps_codec_new ();
    ps_problem_t problem = {0};
    ps_envelope_t *got = ps_codec_decode (codec, wire, sizeof wire, &problem);
    char accepted[PS_MAX_KEY_LEN + 1] = "";
    if (got)
        snprintf (accepted, sizeof accepted, "%s", got->slices[0]->key);
    bool decoded = got != NULL;
    ps_codec_destroy (&codec);
    //  Accepting it would alias the key "a": a NUL is a control byte
    cr_assert_not (decoded, "key \"a\\0b\" accepted as '%s'", accepted);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_MALFORMED, "%s", problem.message);
}

//  Another encoder's bytes: fields out of order, zero values written out,
//  an unknown field. proto3 allows each; the codec must accept them.
Test (codec, accepts_any_conforming_proto3_encoding)
{
    // clang-format off
    const unsigned char wire[] = {
        0x20, 0x07,                     //  seq 7, before version and type
        0x10, PSMQ__MSG_TYPE__PULL,     //  type
        0x18, 0x00,                     //  reply = false, written out
        0x08, 0x01,                     //  version 1
        0x30, 0x00,                     //  clock 0, written out
        0x3a, 0x09,                     //  slices, 9 bytes
        0x18, 0x02,                     //  count 2, before the key
        0x0a, 0x01, 'w',                //  key "w"
        0x10, 0x00,                     //  offset 0, written out
        0x28, 0x00,                     //  dtype F32, written out
        0xf8, 0x07, 0x05,               //  field 127, unknown, varint 5
    };
    // clang-format on
    ps_codec_t *codec = ps_codec_new ();
    ps_problem_t problem = {0};
    ps_envelope_t *got = ps_codec_decode (codec, wire, sizeof wire, &problem);
    cr_assert (got, "refused: %s", problem.message);
    cr_assert_eq (got->seq, 7);
    cr_assert_eq (got->type, PSMQ__MSG_TYPE__PULL);
    cr_assert_eq (got->n_slices, 1);
    cr_assert_str_eq (got->slices[0]->key, "w");
    cr_assert_eq (got->slices[0]->count, 2);
    ps_codec_destroy (&codec);
}

//  A refused envelope that parsed still names its request
Test (codec, refusal_keeps_the_requests_seq)
{
    ps_envelope_t envelope = s_envelope (PSMQ__MSG_TYPE__PULL);
    envelope.seq = 4242;
    envelope.worker = 3;
    envelope.version = 9;
    ps_codec_t *codec = ps_codec_new ();
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode (&envelope, &msg), 0);
    ps_problem_t problem = {0};
    cr_assert_null (ps_codec_decode (codec, zmq_msg_data (&msg), zmq_msg_size (&msg), &problem));
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_VERSION);
    cr_assert (problem.parsed);
    cr_assert_eq (problem.seq, 4242);
    cr_assert_eq (problem.worker, 3);
    zmq_msg_close (&msg);
    //  Bytes that are not protobuf name nothing
    const unsigned char garbage[] = {0xff, 0xff, 0xff};
    cr_assert_null (ps_codec_decode (codec, garbage, sizeof garbage, &problem));
    cr_assert_not (problem.parsed);
    ps_codec_destroy (&codec);
}

Test (codec, rejects_bad_slices)
{
    ps_slice_t slice = s_slice ("w", 0, 4, 4);
    ps_slice_t *slices[] = {&slice};
    ps_envelope_t push = s_envelope (PSMQ__MSG_TYPE__PUSH);
    push.slices = slices;
    push.n_slices = 1;
    s_assert_accepted (&push, "good slice");

    slice.dtype = 7;
    s_assert_rejected (&push, PSMQ__ERR_CODE__ERR_MALFORMED, "dtype 7", "dtype 7");
    slice.dtype = PSMQ__DTYPE__F32;

    //  offset + count may reach PS_MAX_TENSOR_ELEMS but not pass it
    ps_envelope_t pull = push;
    pull.type = PSMQ__MSG_TYPE__PULL;
    slice.offset = PS_MAX_TENSOR_ELEMS - 10;
    slice.count = 10;
    s_assert_accepted (&pull, "slice ending at PS_MAX_TENSOR_ELEMS");
    slice.count = 11;
    s_assert_rejected (&pull, PSMQ__ERR_CODE__ERR_TOO_LARGE, "4294967286", "offset + count");
    //  ... without the sum wrapping around
    slice.offset = UINT64_MAX;
    slice.count = 1;
    s_assert_rejected (&pull, PSMQ__ERR_CODE__ERR_TOO_LARGE, "18446744073709551615",
                       "offset near 2^64");
    slice.offset = 0;
    slice.count = PS_MAX_TENSOR_ELEMS + 1;
    s_assert_rejected (&pull, PSMQ__ERR_CODE__ERR_TOO_LARGE, "4294967297", "count over limit");
    slice.count = 1;
    slice.total = PS_MAX_TENSOR_ELEMS + 1;
    s_assert_rejected (&pull, PSMQ__ERR_CODE__ERR_TOO_LARGE, "'w'", "total over limit");
    slice.total = 1;

    //  Tensor bytes that travel: at most PS_MAX_MESSAGE_BYTES on a PUSH,
    //  no limit on a PULL request, which only names them
    slice.count = PS_MAX_MESSAGE_BYTES / sizeof (float);
    s_assert_accepted (&push, "push of PS_MAX_MESSAGE_BYTES");
    slice.count++;
    s_assert_rejected (&push, PSMQ__ERR_CODE__ERR_TOO_LARGE, "2147483652", "push too large");
    s_assert_accepted (&pull, "pull request of more");
}

//  The message of a rejected total names the total, not offset and count
Test (codec, total_over_limit_message_names_the_total)
{
    ps_slice_t slice = s_slice ("w", 0, 1, PS_MAX_TENSOR_ELEMS);
    ps_slice_t *slices[] = {&slice};
    ps_envelope_t init = s_envelope (PSMQ__MSG_TYPE__INIT);
    init.slices = slices;
    init.n_slices = 1;
    s_assert_accepted (&init, "total at the limit");
    slice.total = PS_MAX_TENSOR_ELEMS + 1;
    s_assert_rejected (&init, PSMQ__ERR_CODE__ERR_TOO_LARGE, "4294967297", "total over limit");
}

Test (codec, rejects_grad_count_and_long_texts)
{
    ps_envelope_t push = s_envelope (PSMQ__MSG_TYPE__PUSH);
    push.grad_count = PS_MAX_GRAD_COUNT;
    s_assert_accepted (&push, "grad_count at the limit");
    push.grad_count = PS_MAX_GRAD_COUNT + 1;
    s_assert_too_large (&push, "grad_count %d", PS_MAX_GRAD_COUNT + 1, "grad_count");

    char text[PS_MAX_ERROR_LEN + 1];
    memset (text, 'e', PS_MAX_ERROR_LEN);
    text[PS_MAX_ERROR_LEN] = '\0';
    Psmq__Error error = PSMQ__ERROR__INIT;
    error.message = text;
    ps_envelope_t reply = s_envelope (PSMQ__MSG_TYPE__ERROR);
    reply.error = &error;
    s_assert_rejected (&reply, PSMQ__ERR_CODE__ERR_TOO_LARGE, "error text", "error text");
    text[PS_MAX_ERROR_LEN - 1] = '\0';
    s_assert_accepted (&reply, "error text of PS_MAX_ERROR_LEN - 1");

    static int64_t clocks[PS_MAX_WORKERS + 1];
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.clocks = clocks;
    hello.n_clocks = PS_MAX_WORKERS;
    ps_envelope_t welcome = s_envelope (PSMQ__MSG_TYPE__HELLO);
    welcome.hello = &hello;
    s_assert_accepted (&welcome, "PS_MAX_WORKERS clocks");
    hello.n_clocks++;
    s_assert_too_large (&welcome, "%d clocks", PS_MAX_WORKERS + 1, "clocks");
}

Test (codec, rejects_bad_group_in_hello)
{
    char *group[] = {"tcp://10.0.0.1:5555", "tcp://host-b:5555"};
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.shard = 1;
    hello.shards = 2;
    hello.group = group;
    hello.n_group = 2;
    ps_envelope_t welcome = s_envelope (PSMQ__MSG_TYPE__HELLO);
    welcome.hello = &hello;
    s_assert_accepted (&welcome, "a group of two");

    //  Endpoints go into INFO's JSON unescaped: no quote, backslash, space
    char *quoted[] = {"tcp://a:1", "tcp://\"b:2"};
    hello.group = quoted;
    s_assert_rejected (&welcome, PSMQ__ERR_CODE__ERR_MALFORMED, "byte 0x22 at 6", "quote");
    char *spaced[] = {"tcp://a:1 x", "tcp://b:2"};
    hello.group = spaced;
    s_assert_rejected (&welcome, PSMQ__ERR_CODE__ERR_MALFORMED, "endpoint 0", "space");
    char *empty[] = {"tcp://a:1", ""};
    hello.group = empty;
    s_assert_rejected (&welcome, PSMQ__ERR_CODE__ERR_MALFORMED, "endpoint 1 has 0 bytes", "empty");
    char long_endpoint[PS_MAX_ENDPOINT_LEN + 2];
    memset (long_endpoint, 'x', sizeof long_endpoint - 1);
    long_endpoint[sizeof long_endpoint - 1] = '\0';
    char *long_group[] = {long_endpoint};
    hello.group = long_group;
    hello.n_group = 1;
    s_assert_rejected (&welcome, PSMQ__ERR_CODE__ERR_MALFORMED, "bytes, expected", "long");
    long_endpoint[PS_MAX_ENDPOINT_LEN] = '\0';
    s_assert_accepted (&welcome, "endpoint of PS_MAX_ENDPOINT_LEN bytes");

    hello.n_group = 0;
    hello.shards = PS_MAX_SHARDS + 1;
    s_assert_rejected (&welcome, PSMQ__ERR_CODE__ERR_TOO_LARGE, "brokers", "shards");
}

//  Three slices of 3, 0 and 2 elements on an envelope of this type
typedef struct {
    ps_slice_t slice[3];
    ps_slice_t *slices[3];
    ps_envelope_t envelope;
} three_t;

static void
s_three (three_t *three, int type, bool reply)
{
    three->slice[0] = s_slice ("a", 0, 3, 3);
    three->slice[1] = s_slice ("b", 0, 0, 5);
    three->slice[2] = s_slice ("c", 4, 2, 6);
    for (int i = 0; i < 3; i++)
        three->slices[i] = &three->slice[i];
    three->envelope = s_envelope (type);
    three->envelope.reply = reply;
    three->envelope.slices = three->slices;
    three->envelope.n_slices = 3;
}

Test (codec, frames_expected_by_type)
{
    const struct {
        int type;
        bool reply;
        size_t frames;
    } cases[] = {
        {PSMQ__MSG_TYPE__PUSH, false, 2},  {PSMQ__MSG_TYPE__INIT, false, 2},
        {PSMQ__MSG_TYPE__PULL, true, 2},   {PSMQ__MSG_TYPE__PULL, false, 0},
        {PSMQ__MSG_TYPE__PUSH, true, 0},   {PSMQ__MSG_TYPE__INIT, true, 0},
        {PSMQ__MSG_TYPE__CLOCK, false, 0}, {PSMQ__MSG_TYPE__HELLO, false, 0},
        {PSMQ__MSG_TYPE__ERROR, true, 0},  {PSMQ__MSG_TYPE__INFO, true, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        three_t three;
        s_three (&three, cases[i].type, cases[i].reply);
        cr_assert_eq (ps_codec_frames_expected (&three.envelope), cases[i].frames,
                      "%s%s: %zu frames expected", ps_codec_type_name (cases[i].type),
                      cases[i].reply ? " reply" : "", cases[i].frames);
        cr_assert_eq (ps_codec_carries_data (&three.envelope), cases[i].frames > 0);
    }
    //  Without any non-empty slice, even a PUSH carries no frame
    three_t three;
    s_three (&three, PSMQ__MSG_TYPE__PUSH, false);
    three.slice[0].count = 0;
    three.slice[2].count = 0;
    cr_assert_eq (ps_codec_frames_expected (&three.envelope), 0);
}

//  Frames of these byte sizes
static void
s_frames (zmq_msg_t *frames, const size_t *sizes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        zmq_msg_init_size (&frames[i], sizes[i]);
        memset (zmq_msg_data (&frames[i]), 0, sizes[i]);
    }
}

static void
s_close (zmq_msg_t *frames, size_t n)
{
    for (size_t i = 0; i < n; i++)
        zmq_msg_close (&frames[i]);
}

//  check_frames on frames of these sizes: its return, problem filled
static int
s_check (const ps_envelope_t *envelope, const size_t *sizes, size_t n, ps_problem_t *problem)
{
    zmq_msg_t frames[4];
    cr_assert (n <= 4);
    s_frames (frames, sizes, n);
    problem->code = 0;
    problem->message[0] = '\0';
    int rc = ps_codec_check_frames (envelope, frames, n, problem);
    s_close (frames, n);
    return rc;
}

Test (codec, check_frames_counts_and_sizes)
{
    three_t three;
    s_three (&three, PSMQ__MSG_TYPE__PUSH, false);
    ps_problem_t problem;
    //  One frame per non-empty slice, in slice order: 3 and 2 floats
    cr_assert_eq (s_check (&three.envelope, (size_t[]){12, 8}, 2, &problem), 0, "%s",
                  problem.message);

    cr_assert_eq (s_check (&three.envelope, (size_t[]){12}, 1, &problem), -1, "missing");
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);
    cr_assert_not_null (strstr (problem.message, "1 tensor frames"), "%s", problem.message);

    cr_assert_eq (s_check (&three.envelope, (size_t[]){12, 8, 4}, 3, &problem), -1, "extra");
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);
    cr_assert_not_null (strstr (problem.message, "3 tensor frames"), "%s", problem.message);

    cr_assert_eq (s_check (&three.envelope, (size_t[]){8, 12}, 2, &problem), -1, "order");
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);
    cr_assert_not_null (strstr (problem.message, "'a'"), "%s", problem.message);

    cr_assert_eq (s_check (&three.envelope, (size_t[]){12, 9}, 2, &problem), -1, "9 bytes");
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);
    cr_assert_not_null (strstr (problem.message, "'c'"), "%s", problem.message);

    cr_assert_eq (s_check (&three.envelope, NULL, 0, &problem), -1, "none");
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);

    //  3 bytes for 1 float
    ps_slice_t one = s_slice ("x", 0, 1, 1);
    ps_slice_t *slices[] = {&one};
    ps_envelope_t init = s_envelope (PSMQ__MSG_TYPE__INIT);
    init.slices = slices;
    init.n_slices = 1;
    cr_assert_eq (s_check (&init, (size_t[]){4}, 1, &problem), 0, "%s", problem.message);
    cr_assert_eq (s_check (&init, (size_t[]){3}, 1, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);
    cr_assert_not_null (strstr (problem.message, "3 bytes"), "%s", problem.message);

    //  A PULL request takes no frame at all
    s_three (&three, PSMQ__MSG_TYPE__PULL, false);
    cr_assert_eq (s_check (&three.envelope, NULL, 0, &problem), 0, "%s", problem.message);
    cr_assert_eq (s_check (&three.envelope, (size_t[]){12, 8}, 2, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);
}

//  Bytes the allocator holds now
static size_t
s_heap_bytes (void)
{
#ifdef __SANITIZE_ADDRESS__
    return __sanitizer_get_current_allocated_bytes ();
#else
    struct mallinfo2 info = mallinfo2 ();
    return info.uordblks + info.hblkhd;
#endif
}

Test (codec, decoding_reuses_the_arena)
{
    //  A small envelope, one bigger than the arena's first block, and a
    //  rejected one, pre-encoded so that the loop only decodes
    full_t full;
    s_full (&full);
    zmq_msg_t wire[3];
    cr_assert_eq (ps_codec_encode (&full.envelope, &wire[0]), 0);
    static ps_slice_t slice[3000];
    static ps_slice_t *slices[3000];
    char keys[3000][24];
    for (int i = 0; i < 3000; i++) {
        snprintf (keys[i], sizeof keys[i], "layer%04d.weights", i);
        slice[i] = s_slice (keys[i], 0, 0, 1);
        slices[i] = &slice[i];
    }
    ps_envelope_t big = s_envelope (PSMQ__MSG_TYPE__PULL);
    big.slices = slices;
    big.n_slices = 3000;
    cr_assert_eq (ps_codec_encode (&big, &wire[1]), 0);
    ps_envelope_t old = s_envelope (PSMQ__MSG_TYPE__PULL);
    old.version = 2;
    cr_assert_eq (ps_codec_encode (&old, &wire[2]), 0);

    size_t before = s_heap_bytes ();
    ps_codec_t *codec = ps_codec_new ();
    ps_problem_t problem;
    size_t warm = 0;
    size_t wrong = 0;
    size_t allocating = 0;
    for (int i = 0; i < 10000; i++) {
        if (i == 100)
            warm = s_heap_bytes ();
        int which = i % 3;
        size_t heap = s_heap_bytes ();
        ps_envelope_t *got = ps_codec_decode (codec, zmq_msg_data (&wire[which]),
                                              zmq_msg_size (&wire[which]), &problem);
        //  While the envelope is alive: nothing was allocated for it
        if (i >= 100 && s_heap_bytes () > heap + 1024)
            allocating++;
        //  No assertion in the loop: Criterion's reports allocate
        if (which == 0 && !(got && got->n_slices == 3 && got->hello->n_clocks == 4))
            wrong++;
        if (which == 1 && !(got && got->n_slices == 3000))
            wrong++;
        if (which == 2 && (got || problem.code != PSMQ__ERR_CODE__ERR_VERSION))
            wrong++;
    }
    size_t steady = s_heap_bytes ();
    ps_codec_destroy (&codec);
    size_t after = s_heap_bytes ();
    cr_assert_eq (wrong, 0, "%zu decodes gave the wrong result", wrong);
    cr_assert_eq (allocating, 0, "%zu decodes in steady state allocated", allocating);
    //  Decoding allocates nothing once the arena has grown to fit
    cr_assert_leq (steady, warm + 1024, "heap grew by %zu bytes over 9900 decodes", steady - warm);
    //  and destroy gives everything back
    cr_assert_leq (after, before + 1024, "%zu bytes leaked", after - before);
    s_close (wire, 3);
}

//  xorshift64*: a fixed seed so that a failing input can be replayed
static uint64_t
s_random (uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545f4914f6cdd1dULL;
}

//  The invariants of a decoded envelope, checked without the codec; how
//  many it breaks
static int
s_broken (const ps_envelope_t *envelope)
{
    int broken = 0;
    broken += envelope->version != 1;
    broken += envelope->type < PSMQ__MSG_TYPE__HELLO || envelope->type > PSMQ__MSG_TYPE__ERROR;
    broken += envelope->n_slices > PS_MAX_SLICES;
    broken += envelope->grad_count > PS_MAX_GRAD_COUNT;
    for (size_t i = 0; i < envelope->n_slices; i++) {
        const ps_slice_t *slice = envelope->slices[i];
        size_t length = strlen (slice->key);
        broken += length < 1 || length > PS_MAX_KEY_LEN;
        for (size_t c = 0; c < length; c++)
            broken += (unsigned char)slice->key[c] < 0x21 || (unsigned char)slice->key[c] > 0x7e;
        broken += slice->dtype != PSMQ__DTYPE__F32;
        broken += slice->count > PS_MAX_TENSOR_ELEMS || slice->offset > PS_MAX_TENSOR_ELEMS ||
                  slice->offset + slice->count > PS_MAX_TENSOR_ELEMS;
    }
    if (envelope->error)
        broken += strlen (envelope->error->message) >= PS_MAX_ERROR_LEN;
    if (envelope->hello)
        broken += envelope->hello->n_clocks > PS_MAX_WORKERS;
    return broken;
}

//  A failed decode must say why with a code it can send back
static bool
s_problem_ok (const ps_problem_t *problem)
{
    return problem->message[0] != '\0' && (problem->code == PSMQ__ERR_CODE__ERR_MALFORMED ||
                                           problem->code == PSMQ__ERR_CODE__ERR_VERSION ||
                                           problem->code == PSMQ__ERR_CODE__ERR_TYPE ||
                                           problem->code == PSMQ__ERR_CODE__ERR_TOO_LARGE);
}

Test (codec, fuzz_random_bytes)
{
    ps_codec_t *codec = ps_codec_new ();
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    unsigned char data[300];
    for (int i = 0; i < 20000; i++) {
        size_t size = s_random (&state) % (sizeof data + 1);
        for (size_t b = 0; b < size; b++)
            data[b] = (unsigned char)s_random (&state);
        //  Half the inputs start like an envelope, to get past the first checks
        if (i % 2 && size >= 4) {
            data[0] = 0x08;
            data[1] = 0x01;
            data[2] = 0x10;
            data[3] = (unsigned char)(s_random (&state) % 11);
        }
        ps_problem_t problem = {0};
        ps_envelope_t *got = ps_codec_decode (codec, data, size, &problem);
        //  cr_assert_fail only: a passing assertion costs a report too
        if (got && s_broken (got))
            cr_assert_fail ("input %d (%zu bytes) decoded broken", i, size);
        if (!got && !s_problem_ok (&problem))
            cr_assert_fail ("input %d: code %d, message '%s'", i, problem.code, problem.message);
    }
    ps_codec_destroy (&codec);
}

Test (codec, fuzz_mutations_of_a_valid_envelope)
{
    full_t full;
    s_full (&full);
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode (&full.envelope, &msg), 0);
    size_t size = zmq_msg_size (&msg);
    unsigned char *valid = zmq_msg_data (&msg);
    unsigned char *data = malloc (size);
    ps_codec_t *codec = ps_codec_new ();
    uint64_t state = 0x243f6a8885a308d3ULL;
    int decoded = 0;
    int rejected = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy (data, valid, size);
        size_t at = s_random (&state) % size;
        unsigned char byte = (unsigned char)(1 + s_random (&state) % 255);
        data[at] ^= byte;
        ps_problem_t problem = {0};
        ps_envelope_t *got = ps_codec_decode (codec, data, size, &problem);
        decoded += got != NULL;
        rejected += got == NULL;
        if (got && s_broken (got))
            cr_assert_fail ("byte %zu ^ 0x%02x decoded broken", at, byte);
        if (!got && !s_problem_ok (&problem))
            cr_assert_fail ("byte %zu ^ 0x%02x: code %d, message '%s'", at, byte, problem.code,
                            problem.message);
    }
    //  Both outcomes happen, so both branches were exercised
    cr_assert_gt (decoded, 1000);
    cr_assert_gt (rejected, 1000);
    ps_codec_destroy (&codec);
    free (data);
    zmq_msg_close (&msg);
}

Test (codec, names)
{
    const char *types[] = {"none",  "hello",     "init", "push", "pull",
                           "clock", "heartbeat", "bye",  "info", "error"};
    for (int type = 0; type <= PSMQ__MSG_TYPE__ERROR; type++)
        cr_assert_str_eq (ps_codec_type_name (type), types[type]);
    cr_assert_str_eq (ps_codec_type_name (PSMQ__MSG_TYPE__PUSH), "push");
    cr_assert_str_eq (ps_codec_type_name (-1), "unknown");
    cr_assert_str_eq (ps_codec_type_name (PSMQ__MSG_TYPE__ERROR + 1), "unknown");
    cr_assert_str_eq (ps_codec_type_name (1000000), "unknown");

    cr_assert_str_eq (ps_codec_error_name (PSMQ__ERR_CODE__ERR_NONE), "none");
    cr_assert_str_eq (ps_codec_error_name (PSMQ__ERR_CODE__ERR_MALFORMED), "malformed");
    cr_assert_str_eq (ps_codec_error_name (PSMQ__ERR_CODE__ERR_TOO_LARGE), "too-large");
    cr_assert_str_eq (ps_codec_error_name (PSMQ__ERR_CODE__ERR_SHUTDOWN), "shutdown");
    //  Every code has a name of its own
    cr_assert_str_eq (ps_codec_error_name (PSMQ__ERR_CODE__ERR_GROUP), "group");
    for (int a = 0; a <= PSMQ__ERR_CODE__ERR_GROUP; a++) {
        cr_assert_str_neq (ps_codec_error_name (a), "unknown", "code %d", a);
        for (int b = 0; b < a; b++)
            cr_assert_str_neq (ps_codec_error_name (a), ps_codec_error_name (b));
    }
    cr_assert_str_eq (ps_codec_error_name (-1), "unknown");
    cr_assert_str_eq (ps_codec_error_name (PSMQ__ERR_CODE__ERR_NONFINITE + 1), "unknown");
    cr_assert_str_eq (ps_codec_error_name (INT32_MIN), "unknown");
}
