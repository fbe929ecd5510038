/*  =========================================================================
    ps_checkpoint - one checkpoint file: its name, writing it, reading it
    back (the format is in ps_checkpoint.h; the folder of them is
    ps_checkpoint_dir.c)

    Writing streams every byte through one small staging buffer, aligned
    so that the file can be opened with O_DIRECT: the float arrays are
    copied from where they live (a published version, a copy of the
    optimizer state) into it a piece at a time, the CRC runs over the piece
    while it is hot in the cache, and the disk takes it from there by DMA.
    So a checkpoint costs one pass over the parameters' memory, not three
    (a checksum pass, write ()'s copy into the page cache and the
    writeback's read of it), and it does not push the broker's working set
    out of the page cache: on this 2-core VM the writer thread competes
    with serving for cores and memory bandwidth, and zlib's crc32 alone
    took more time than the copy. The CRC is zlib's CRC-32 as libdeflate
    computes it (carry-less multiplication: five times zlib's speed, the
    same values, so files stay format 1). A file system that refuses
    O_DIRECT (some network ones, older tmpfs) is written through the page
    cache as before. Reading is one pass as well: every length is
    checked against what is left of the file before anything is
    allocated, so a corrupt length cannot ask for more memory than the file
    holds, and the arrays are read straight into the buffers the store
    will keep.

    Why a format of our own and not, say, protobuf: the values must stream
    from the published versions without a copy, and a reader must size
    every array from the file's length before it trusts it; a flat layout
    with a trailing CRC does both in a page of code.

    The integers are written byte by byte in little-endian order; the
    float arrays are written as they lie in memory, which is why the build
    refuses a big-endian host.
    ========================================================================= */

#include "ps_checkpoint.h"
#include "ps_codec.h"
#include "ps_dtype.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <libdeflate.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint files hold float arrays as a little-endian host lays them out"
#endif

#define MAGIC "PSMQCKPT"
#define END_MAGIC "PSMQEND1"
#define HEADER_BYTES 72
#define RANK_BYTES 12
#define TRAILER_BYTES 12
//  A key's fixed fields: name length, size, optimizer (kind, five floats,
//  decay steps), steps, version, state arrays; its name and arrays follow
#define KEY_FIXED_BYTES (2 + 8 + 4 + 20 + 8 + 8 + 8 + 4)
//  Format 2 adds the key's wire dtype after them
#define KEY_DTYPE_BYTES 4
//  The longest file a broker could have written: its store's limit holds
//  two versions of each key besides the state, a file one
#define MAX_FILE_BYTES                                                                             \
    ((uint64_t)HEADER_BYTES + (uint64_t)PS_MAX_WORKERS * RANK_BYTES +                              \
     (uint64_t)PS_MAX_KEYS * (KEY_FIXED_BYTES + PS_MAX_KEY_LEN) + PS_MAX_STORE_BYTES +             \
     TRAILER_BYTES)
#define IO_BUFFER 65536
//  The writer's staging buffer, a multiple of the alignment O_DIRECT
//  wants of addresses, lengths and offsets, filled a piece at a time: each
//  piece small enough to stay in a core's L2 cache between the copy into
//  it and the CRC over it, the buffer large enough that the disk gets few
//  requests (each one's completion interrupts whatever runs)
#define DIRECT_ALIGN 4096
#define STAGE_BYTES (4 << 20)
#define PIECE_BYTES (256 << 10)
//  A paced write keeps to its rate chunk by chunk: what slows serving is
//  less the writer's CPU (it runs at nice 10, ps_checkpointer.c) than the
//  disk's traffic itself, its completions interrupting whatever runs, so
//  fewer bytes a second is what helps (psbench --only checkpoint, see
//  docs/performance.md)

// ------------------------------------------------------------ the struct

ps_checkpoint_t *
ps_checkpoint_new (uint32_t world)
{
    if (world == 0 || world > PS_MAX_WORKERS)
        return NULL;
    ps_checkpoint_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->ranks = calloc (world, sizeof *self->ranks);
    if (!self->ranks) {
        free (self);
        return NULL;
    }
    self->world = world;
    self->shards = 1;
    return self;
}

void
ps_checkpoint_destroy (ps_checkpoint_t **self_p)
{
    assert (self_p);
    ps_checkpoint_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nkeys; i++) {
        ps_buf_unref (&self->keys[i].values);
        free (self->keys[i].state[0]);
        free (self->keys[i].state[1]);
    }
    free (self->keys);
    free (self->ranks);
    free (self);
    *self_p = NULL;
}

ps_checkpoint_key_t *
ps_checkpoint_add_key (ps_checkpoint_t *self)
{
    assert (self);
    if (self->nkeys == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 16;
        ps_checkpoint_key_t *grown = realloc (self->keys, capacity * sizeof *grown);
        if (!grown)
            return NULL;
        self->keys = grown;
        self->capacity = capacity;
    }
    ps_checkpoint_key_t *key = &self->keys[self->nkeys++];
    memset (key, 0, sizeof *key);
    return key;
}

int64_t
ps_checkpoint_job_clock (const ps_checkpoint_t *self)
{
    int64_t slowest = INT64_MAX, furthest = 0;
    for (uint32_t rank = 0; rank < self->world; rank++) {
        const ps_checkpoint_rank_t *slot = &self->ranks[rank];
        if (slot->state != PS_RANK_GONE && slot->clock < slowest)
            slowest = slot->clock;
        if (slot->clock > furthest)
            furthest = slot->clock;
    }
    return slowest == INT64_MAX ? furthest : slowest;
}

//  The format a checkpoint is written in: 1 while every key travels in
//  f32, so that brokers that read only format 1 read it; 2 (the wire
//  dtype of each key) once one does not
static uint32_t
s_format (const ps_checkpoint_t *self)
{
    for (size_t i = 0; i < self->nkeys; i++)
        if (self->keys[i].dtype != PS_DTYPE_F32)
            return 2;
    return 1;
}

uint64_t
ps_checkpoint_bytes (const ps_checkpoint_t *self)
{
    uint64_t bytes = HEADER_BYTES + (uint64_t)self->world * RANK_BYTES + TRAILER_BYTES;
    uint64_t fixed = KEY_FIXED_BYTES + (s_format (self) >= 2 ? KEY_DTYPE_BYTES : 0);
    for (size_t i = 0; i < self->nkeys; i++) {
        const ps_checkpoint_key_t *key = &self->keys[i];
        uint64_t arrays = 1 + ps_optim_state_slots (key->optim.kind);
        bytes += fixed + strlen (key->name) + arrays * key->size * sizeof (float);
    }
    return bytes;
}

// ------------------------------------------------------------ names

//  The sequence number of a name "checkpoint-<digits><suffix>"; true when
//  name is one
bool
ps_checkpoint_sequence_of (const char *name, const char *suffix, uint64_t *sequence)
{
    static const char prefix[] = "checkpoint-";
    if (strncmp (name, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *digits = name + sizeof prefix - 1;
    size_t ndigits = strspn (digits, "0123456789");
    if (ndigits == 0 || ndigits > 19 || strcmp (digits + ndigits, suffix) != 0)
        return false;
    uint64_t value = 0;
    for (size_t i = 0; i < ndigits; i++)
        value = value * 10 + (uint64_t)(digits[i] - '0');
    *sequence = value;
    return true;
}

int
ps_checkpoint_path (char *path, size_t size, const char *dir, uint64_t sequence, const char *suffix)
{
    int length = snprintf (path, size, "%s/checkpoint-%06" PRIu64 ".psmq%s", dir, sequence, suffix);
    return length > 0 && (size_t)length < size ? 0 : -1;
}

// ------------------------------------------------------------ writing

//  Little-endian fields into a byte array
static void
s_put32 (uint8_t *at, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        at[i] = (uint8_t)(value >> (8 * i));
}

static void
s_put64 (uint8_t *at, uint64_t value)
{
    for (int i = 0; i < 8; i++)
        at[i] = (uint8_t)(value >> (8 * i));
}

static void
s_put_float (uint8_t *at, float value)
{
    uint32_t bits;
    memcpy (&bits, &value, sizeof bits);
    s_put32 (at, bits);
}

typedef struct {
    int fd;                //  the .tmp file
    bool direct;           //  opened with O_DIRECT, and it works
    uint32_t crc;          //  of everything staged so far
    uint64_t written;      //  bytes staged: the file's length
    uint8_t *stage;        //  STAGE_BYTES, aligned to DIRECT_ALIGN
    size_t used;           //  bytes of it in use
    ps_checkpoint_io_t io; //  control, asked before each
                           //  write, and the pace
    int64_t started_us;    //  monotonic, when the write began
    ps_problem_t *problem; //  set at the first failure
    bool failed;           //  a write failed or was cancelled
} out_t;

//  write () of all of data; a file system that takes O_DIRECT at open but
//  refuses it at the first write (EINVAL) gets it through the page cache
static void
s_write_all (out_t *out, const uint8_t *data, size_t size)
{
    while (size && !out->failed) {
        ssize_t wrote = write (out->fd, data, size);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote < 0 && errno == EINVAL && out->direct) {
            out->direct = false;
            int flags = fcntl (out->fd, F_GETFL);
            if (flags != -1 && fcntl (out->fd, F_SETFL, flags & ~O_DIRECT) == 0)
                continue;
        }
        if (wrote <= 0) {
            ps_problem_set (out->problem, 0, "write failed after %" PRIu64 " bytes: %s",
                            out->written, wrote < 0 ? strerror (errno) : "wrote nothing");
            out->failed = true;
            return;
        }
        data += wrote;
        size -= (size_t)wrote;
    }
}

//  The staged bytes to the file. Under O_DIRECT a length must be a
//  multiple of DIRECT_ALIGN: the last piece is padded with zeros, which
//  s_finish cuts off again
static int64_t
s_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

//  What the caller says now: a HURRY ends the pacing, a CANCEL fails the
//  write; whether to go on
static bool
s_go_on (out_t *out)
{
    ps_checkpoint_control_t said =
        out->io.control ? out->io.control (out->io.arg) : PS_CHECKPOINT_GO;
    if (said == PS_CHECKPOINT_HURRY)
        out->io.rate = 0;
    if (said == PS_CHECKPOINT_CANCEL) {
        ps_problem_set (out->problem, 0, "cancelled");
        out->failed = true;
    }
    return !out->failed;
}

//  Sleep until the bytes written so far are within the rate, in slices,
//  asking the caller after each
static void
s_pace (out_t *out)
{
    while (out->io.rate && !out->failed) {
        int64_t due = out->started_us + (int64_t)((double)out->written * 1e6 / out->io.rate);
        int64_t left = due - s_now_us ();
        if (left <= 0)
            return;
        int64_t slice = PS_CHECKPOINT_PACE_SLICE_MS * 1000;
        usleep ((useconds_t)(left < slice ? left : slice));
        s_go_on (out);
    }
}

static void
s_flush (out_t *out, bool last)
{
    if (out->failed || out->used == 0 || !s_go_on (out))
        return;
    size_t length = out->used;
    if (last && out->direct) {
        length = (out->used + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
        memset (out->stage + out->used, 0, length - out->used);
    }
    s_write_all (out, out->stage, length);
    out->used = 0;
    if (!last)
        s_pace (out);
}

//  Bytes into the file through the staging buffer, checksummed unless raw
//  (the checksum itself)
static void
s_out_bytes (out_t *out, const void *data, size_t size, bool raw)
{
    const uint8_t *bytes = data;
    while (size && !out->failed) {
        size_t room = STAGE_BYTES - out->used < PIECE_BYTES ? STAGE_BYTES - out->used : PIECE_BYTES;
        size_t take = room < size ? room : size;
        uint8_t *into = out->stage + out->used;
        memcpy (into, bytes, take);
        if (!raw)
            out->crc = libdeflate_crc32 (out->crc, into, take);
        out->used += take;
        out->written += take;
        bytes += take;
        size -= take;
        if (out->used == STAGE_BYTES)
            s_flush (out, false);
    }
}

static void
s_out (out_t *out, const void *data, size_t size)
{
    s_out_bytes (out, data, size, false);
}

//  The last bytes out, the padding cut off, the file on disk
static void
s_finish (out_t *out, const char *temporary)
{
    s_flush (out, true);
    if (out->failed)
        return;
    if (ftruncate (out->fd, (off_t)out->written)) {
        ps_problem_set (out->problem, 0, "cannot set the length of %s: %s", temporary,
                        strerror (errno));
        out->failed = true;
        return;
    }
    if (fsync (out->fd)) {
        ps_problem_set (out->problem, 0, "cannot sync %s: %s", temporary, strerror (errno));
        out->failed = true;
    }
}

//  The .tmp file, with O_DIRECT when its file system takes it; -1 (errno
//  set) when it cannot be made
static int
s_create (const char *temporary, bool *direct)
{
    int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    int fd = open (temporary, flags | O_DIRECT, 0600);
    *direct = fd >= 0;
    if (fd < 0 && errno == EINVAL)
        fd = open (temporary, flags, 0600);
    return fd;
}

static void
s_write_header (out_t *out, const ps_checkpoint_t *self, uint64_t file_bytes)
{
    uint8_t header[HEADER_BYTES] = {0};
    memcpy (header, MAGIC, 8);
    s_put32 (header + 8, s_format (self));
    s_put64 (header + 16, file_bytes);
    s_put64 (header + 24, self->sequence);
    s_put64 (header + 32, (uint64_t)self->written_ms);
    s_put32 (header + 40, self->world);
    s_put32 (header + 44, (uint32_t)self->staleness);
    s_put32 (header + 48, self->shard);
    s_put32 (header + 52, self->shards);
    s_put64 (header + 56, (uint64_t)self->clock);
    s_put32 (header + 64, (uint32_t)self->nkeys);
    s_out (out, header, sizeof header);
    for (uint32_t rank = 0; rank < self->world; rank++) {
        uint8_t slot[RANK_BYTES];
        s_put32 (slot, (uint32_t)self->ranks[rank].state);
        s_put64 (slot + 4, (uint64_t)self->ranks[rank].clock);
        s_out (out, slot, sizeof slot);
    }
}

static void
s_write_key (out_t *out, const ps_checkpoint_key_t *key, uint32_t format)
{
    size_t name_length = strlen (key->name);
    size_t slots = ps_optim_state_slots (key->optim.kind);
    assert (name_length > 0 && name_length <= PS_MAX_KEY_LEN);
    assert (key->values && ps_buf_count (key->values) >= key->size);
    uint8_t fixed[KEY_FIXED_BYTES + KEY_DTYPE_BYTES + PS_MAX_KEY_LEN];
    uint8_t *at = fixed;
    at[0] = (uint8_t)name_length;
    at[1] = (uint8_t)(name_length >> 8);
    memcpy (at + 2, key->name, name_length);
    at += 2 + name_length;
    s_put64 (at, key->size);
    s_put32 (at + 8, (uint32_t)key->optim.kind);
    s_put_float (at + 12, key->optim.lr);
    s_put_float (at + 16, key->optim.momentum);
    s_put_float (at + 20, key->optim.beta1);
    s_put_float (at + 24, key->optim.beta2);
    s_put_float (at + 28, key->optim.eps);
    s_put64 (at + 32, key->optim.decay_steps);
    s_put64 (at + 40, key->steps);
    s_put64 (at + 48, key->version);
    s_put32 (at + 56, (uint32_t)slots);
    size_t dtype_bytes = format >= 2 ? KEY_DTYPE_BYTES : 0;
    if (dtype_bytes)
        s_put32 (at + 60, (uint32_t)key->dtype);
    s_out (out, fixed, (size_t)(at + 60 + dtype_bytes - fixed));
    size_t bytes = (size_t)key->size * sizeof (float);
    s_out (out, ps_buf_data (key->values), bytes);
    for (size_t slot = 0; slot < slots; slot++) {
        assert (key->state[slot]);
        s_out (out, key->state[slot], bytes);
    }
}

int
ps_checkpoint_sync_dir (const char *dir, ps_problem_t *problem)
{
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync (fd)) {
        int error = errno;
        if (fd >= 0)
            close (fd);
        return ps_problem_set (problem, 0, "cannot sync directory %s: %s", dir, strerror (error));
    }
    close (fd);
    return 0;
}

int
ps_checkpoint_write (ps_checkpoint_t *self, const char *dir, char *path, size_t path_size,
                     const ps_checkpoint_io_t *io, ps_problem_t *problem)
{
    assert (self);
    assert (dir);
    char temporary[PATH_MAX];
    if (ps_checkpoint_path (path, path_size, dir, self->sequence, "") ||
        ps_checkpoint_path (temporary, sizeof temporary, dir, self->sequence, ".tmp"))
        return ps_problem_set (problem, 0, "checkpoint directory name too long: %s", dir);
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    self->written_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    self->clock = ps_checkpoint_job_clock (self);
    out_t out = {.crc = 0, .problem = problem, .started_us = s_now_us ()};
    if (io)
        out.io = *io;
    if (posix_memalign ((void **)&out.stage, DIRECT_ALIGN, STAGE_BYTES))
        return ps_problem_set (problem, 0, "out of memory writing %s", path);
    out.fd = s_create (temporary, &out.direct);
    if (out.fd < 0) {
        ps_problem_set (problem, 0, "cannot create %s: %s", temporary, strerror (errno));
        free (out.stage);
        return -1;
    }
    uint64_t file_bytes = ps_checkpoint_bytes (self);
    s_write_header (&out, self, file_bytes);
    for (size_t i = 0; i < self->nkeys && !out.failed; i++)
        s_write_key (&out, &self->keys[i], s_format (self));
    s_out (&out, END_MAGIC, 8);
    uint8_t crc[4];
    s_put32 (crc, out.crc);
    s_out_bytes (&out, crc, sizeof crc, true);
    if (!out.failed && out.written != file_bytes) {
        ps_problem_set (problem, 0, "wrote %" PRIu64 " bytes where %" PRIu64 " were due",
                        out.written, file_bytes);
        out.failed = true;
    }
    s_finish (&out, temporary);
    bool failed = close (out.fd) != 0 || out.failed;
    if (failed && !out.failed)
        ps_problem_set (problem, 0, "cannot close %s: %s", temporary, strerror (errno));
    free (out.stage);
    if (!failed && rename (temporary, path)) {
        ps_problem_set (problem, 0, "cannot rename %s: %s", temporary, strerror (errno));
        failed = true;
    }
    if (failed) {
        unlink (temporary);
        return -1;
    }
    return ps_checkpoint_sync_dir (dir, problem);
}

// ------------------------------------------------------------ reading

static uint32_t
s_get32 (const uint8_t *at)
{
    uint32_t value = 0;
    for (int i = 3; i >= 0; i--)
        value = value << 8 | at[i];
    return value;
}

static uint64_t
s_get64 (const uint8_t *at)
{
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--)
        value = value << 8 | at[i];
    return value;
}

static float
s_get_float (const uint8_t *at)
{
    uint32_t bits = s_get32 (at);
    float value;
    memcpy (&value, &bits, sizeof value);
    return value;
}

typedef struct {
    int fd;                    //  the file
    uint64_t length;           //  its bytes
    uint64_t at;               //  bytes consumed
    uint32_t crc;              //  of the bytes consumed
    uint32_t format;           //  the header's format version, 1 or 2
    uint8_t buffer[IO_BUFFER]; //  read ahead
    size_t have;               //  bytes in it
    size_t next;               //  the next one to consume
} in_t;

//  read () that retries on EINTR; bytes read, 0 at the end, -1 on error
static ssize_t
s_read (int fd, void *data, size_t size)
{
    ssize_t got;
    do
        got = read (fd, data, size);
    while (got < 0 && errno == EINTR);
    return got;
}

//  The next size bytes into data, checksummed; -1 when the file ends first
static int
s_in (in_t *in, void *data, size_t size)
{
    uint8_t *into = data;
    if (size > in->length - in->at)
        return -1;
    size_t buffered = in->have - in->next;
    size_t take = buffered < size ? buffered : size;
    memcpy (into, in->buffer + in->next, take);
    in->next += take;
    size_t done = take;
    while (done < size) {
        size_t left = size - done;
        if (left >= sizeof in->buffer) {
            //  A large array: straight into its place
            size_t chunk = left < PS_CHECKPOINT_CHUNK_BYTES ? left : PS_CHECKPOINT_CHUNK_BYTES;
            ssize_t got = s_read (in->fd, into + done, chunk);
            if (got <= 0)
                return -1;
            done += (size_t)got;
            continue;
        }
        ssize_t got = s_read (in->fd, in->buffer, sizeof in->buffer);
        if (got <= 0)
            return -1;
        in->have = (size_t)got;
        take = left < in->have ? left : in->have;
        memcpy (into + done, in->buffer, take);
        in->next = take;
        done += take;
    }
    for (size_t at = 0; at < size; at += PS_CHECKPOINT_CHUNK_BYTES) {
        size_t chunk =
            size - at < PS_CHECKPOINT_CHUNK_BYTES ? size - at : PS_CHECKPOINT_CHUNK_BYTES;
        in->crc = libdeflate_crc32 (in->crc, into + at, chunk);
    }
    in->at += size;
    return 0;
}

//  What a file whose bytes do not give the CRC it ends with is told
static int
s_checksum_mismatch (ps_problem_t *problem, uint32_t stored, uint32_t computed)
{
    return ps_problem_set (problem, 0,
                           "checksum mismatch: the file says %08" PRIx32 ", its bytes give "
                           "%08" PRIx32 " (torn or corrupt)",
                           stored, computed);
}

//  The CRC stored at the end of the file and the one its bytes have; 0, or
//  -1 when the file cannot be read
static int
s_file_crc (int fd, uint64_t length, uint32_t *stored, uint32_t *computed)
{
    uint8_t buffer[IO_BUFFER];
    uint32_t crc = 0;
    uint64_t at = 0, end = length - 4;
    while (at < end) {
        size_t chunk = end - at < sizeof buffer ? (size_t)(end - at) : sizeof buffer;
        ssize_t got = pread (fd, buffer, chunk, (off_t)at);
        if (got <= 0)
            return -1;
        crc = libdeflate_crc32 (crc, buffer, (size_t)got);
        at += (uint64_t)got;
    }
    if (pread (fd, buffer, 4, (off_t)end) != 4)
        return -1;
    *stored = s_get32 (buffer);
    *computed = crc;
    return 0;
}

//  A structural problem found while parsing, said as format says: a
//  checksum that does not match is the likelier story (a flipped byte in
//  a length), and told instead
static int s_refuse (in_t *in, ps_problem_t *problem, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_refuse (in_t *in, ps_problem_t *problem, const char *format, ...)
{
    uint32_t stored, computed;
    if (s_file_crc (in->fd, in->length, &stored, &computed))
        return ps_problem_set (problem, 0, "cannot read it: %s", strerror (errno));
    if (stored != computed)
        return s_checksum_mismatch (problem, stored, computed);
    char why[PS_MAX_ERROR_LEN];
    va_list args;
    va_start (args, format);
    vsnprintf (why, sizeof why, format, args);
    va_end (args);
    return ps_problem_set (problem, 0, "%s", why);
}

//  The header and the ranks into a new *made; the number of keys that
//  follow, or -1 with problem set
static int
s_read_header (in_t *in, ps_checkpoint_t **made, ps_problem_t *problem)
{
    uint8_t header[HEADER_BYTES];
    size_t available = in->length < sizeof header ? (size_t)in->length : sizeof header;
    if (pread (in->fd, header, available, 0) != (ssize_t)available)
        return ps_problem_set (problem, 0, "cannot read it: %s", strerror (errno));
    if (available >= 8 && memcmp (header, MAGIC, 8) != 0)
        return ps_problem_set (problem, 0, "not a psmq checkpoint (its first bytes are not %s)",
                               MAGIC);
    if (in->length < HEADER_BYTES + RANK_BYTES + TRAILER_BYTES)
        return ps_problem_set (problem, 0,
                               "truncated: %" PRIu64 " bytes, less than a header and a trailer",
                               in->length);
    in->format = s_get32 (header + 8);
    if (in->format < PS_CHECKPOINT_OLDEST_VERSION || in->format > PS_CHECKPOINT_VERSION)
        return ps_problem_set (problem, 0, "format version %" PRIu32 ", this broker reads %d to %d",
                               in->format, PS_CHECKPOINT_OLDEST_VERSION, PS_CHECKPOINT_VERSION);
    uint64_t announced = s_get64 (header + 16);
    if (announced != in->length)
        return ps_problem_set (
            problem, 0, "%s: %" PRIu64 " bytes of the %" PRIu64 " its header announces",
            in->length < announced ? "truncated" : "too long", in->length, announced);
    if (in->length > MAX_FILE_BYTES)
        return ps_problem_set (problem, 0, "%" PRIu64 " bytes, more than a broker's store can hold",
                               in->length);
    if (s_in (in, header, sizeof header))
        return ps_problem_set (problem, 0, "cannot read it: %s", strerror (errno));
    uint32_t world = s_get32 (header + 40);
    int32_t staleness = (int32_t)s_get32 (header + 44);
    uint32_t shard = s_get32 (header + 48), shards = s_get32 (header + 52);
    uint32_t nkeys = s_get32 (header + 64);
    if (world == 0 || world > PS_MAX_WORKERS ||
        (uint64_t)world * RANK_BYTES > in->length - in->at - TRAILER_BYTES)
        return s_refuse (in, problem, "a world of %" PRIu32 " workers", world);
    if (staleness < -1 || staleness > PS_MAX_STALENESS)
        return s_refuse (in, problem, "staleness %" PRId32, staleness);
    if (shards == 0 || shards > PS_MAX_SHARDS || shard >= shards)
        return s_refuse (in, problem, "shard %" PRIu32 " of %" PRIu32, shard, shards);
    if (nkeys > PS_MAX_KEYS)
        return s_refuse (in, problem, "%" PRIu32 " keys, more than %d", nkeys, PS_MAX_KEYS);
    ps_checkpoint_t *self = ps_checkpoint_new (world);
    if (!self)
        return ps_problem_set (problem, 0, "out of memory for %" PRIu32 " ranks", world);
    self->sequence = s_get64 (header + 24);
    self->written_ms = (int64_t)s_get64 (header + 32);
    self->staleness = staleness;
    self->shard = shard;
    self->shards = shards;
    self->clock = (int64_t)s_get64 (header + 56);
    *made = self;
    for (uint32_t rank = 0; rank < world; rank++) {
        uint8_t slot[RANK_BYTES];
        if (s_in (in, slot, sizeof slot))
            return s_refuse (in, problem, "%s", "the file ends inside its ranks");
        uint32_t state = s_get32 (slot);
        int64_t clock = (int64_t)s_get64 (slot + 4);
        if (state > PS_RANK_GONE || clock < 0 || clock == INT64_MAX)
            return s_refuse (in, problem, "rank %" PRIu32 ": state %" PRIu32 " at clock %" PRId64,
                             rank, state, clock);
        self->ranks[rank] = (ps_checkpoint_rank_t){(ps_rank_state_t)state, clock};
    }
    //  The keys' fields are checked as they are read
    return (int)nkeys;
}

//  One key's fields and arrays; 0, or -1 with problem set
static int
s_read_key (in_t *in, ps_checkpoint_t *self, size_t index, ps_problem_t *problem)
{
    uint8_t length_bytes[2];
    if (s_in (in, length_bytes, 2))
        return s_refuse (in, problem, "%s", "the file ends inside a key");
    size_t name_length = (size_t)length_bytes[0] | (size_t)length_bytes[1] << 8;
    if (name_length == 0 || name_length > PS_MAX_KEY_LEN)
        return s_refuse (in, problem, "key %zu: a name of %zu bytes", index, name_length);
    ps_checkpoint_key_t *key = ps_checkpoint_add_key (self);
    if (!key)
        return ps_problem_set (problem, 0, "out of memory for key %zu", index);
    uint8_t fixed[KEY_FIXED_BYTES + KEY_DTYPE_BYTES];
    size_t fixed_bytes = KEY_FIXED_BYTES - 2 + (in->format >= 2 ? KEY_DTYPE_BYTES : 0);
    if (s_in (in, key->name, name_length) || s_in (in, fixed, fixed_bytes))
        return s_refuse (in, problem, "%s", "the file ends inside a key");
    key->name[name_length] = 0;
    ps_problem_t bad;
    if (ps_codec_check_key (key->name, &bad))
        return s_refuse (in, problem, "key %zu: %s", index, bad.message);
    key->size = s_get64 (fixed);
    key->optim = (ps_optim_config_t){.kind = (ps_optim_kind_t)s_get32 (fixed + 8),
                                     .lr = s_get_float (fixed + 12),
                                     .momentum = s_get_float (fixed + 16),
                                     .beta1 = s_get_float (fixed + 20),
                                     .beta2 = s_get_float (fixed + 24),
                                     .eps = s_get_float (fixed + 28),
                                     .decay_steps = s_get64 (fixed + 32)};
    key->steps = s_get64 (fixed + 40);
    key->version = s_get64 (fixed + 48);
    uint32_t slots = s_get32 (fixed + 56);
    uint32_t dtype = in->format >= 2 ? s_get32 (fixed + 60) : PS_DTYPE_F32;
    if (!ps_dtype_known ((int)dtype))
        return s_refuse (in, problem, "key '%s': wire dtype %" PRIu32, key->name, dtype);
    key->dtype = (int)dtype;
    uint64_t left = in->length - in->at - TRAILER_BYTES;
    if (ps_optim_config_check (&key->optim, &bad))
        return s_refuse (in, problem, "key '%s': %s", key->name, bad.message);
    if (slots != ps_optim_state_slots (key->optim.kind) || key->version == 0 || key->size == 0 ||
        key->size > PS_MAX_TENSOR_ELEMS || key->size * sizeof (float) * (1 + slots) > left)
        return s_refuse (in, problem,
                         "key '%s': %" PRIu64 " elements, %" PRIu32
                         " state arrays, version %" PRIu64 ", where %" PRIu64 " bytes are left",
                         key->name, key->size, slots, key->version, left);
    size_t bytes = (size_t)key->size * sizeof (float);
    key->values = ps_buf_new ((size_t)key->size);
    if (!key->values)
        return ps_problem_set (problem, 0, "out of memory for key '%s'", key->name);
    if (s_in (in, ps_buf_data (key->values), bytes))
        return s_refuse (in, problem, "%s", "the file ends inside a key's values");
    for (uint32_t slot = 0; slot < slots; slot++) {
        key->state[slot] = malloc (bytes);
        if (!key->state[slot])
            return ps_problem_set (problem, 0, "out of memory for key '%s'", key->name);
        if (s_in (in, key->state[slot], bytes))
            return s_refuse (in, problem, "%s", "the file ends inside a key's state");
    }
    return 0;
}

ps_checkpoint_t *
ps_checkpoint_read (const char *path, ps_problem_t *problem)
{
    assert (path);
    in_t *in = malloc (sizeof *in);
    if (!in) {
        ps_problem_set (problem, 0, "out of memory");
        return NULL;
    }
    *in = (in_t){.crc = 0};
    in->fd = open (path, O_RDONLY | O_CLOEXEC);
    struct stat info;
    if (in->fd < 0 || fstat (in->fd, &info)) {
        ps_problem_set (problem, 0, "cannot open it: %s", strerror (errno));
        if (in->fd >= 0)
            close (in->fd);
        free (in);
        return NULL;
    }
    in->length = (uint64_t)info.st_size;
    ps_checkpoint_t *self = NULL;
    int nkeys = s_read_header (in, &self, problem);
    int rc = nkeys < 0 ? -1 : 0;
    for (int i = 0; rc == 0 && i < nkeys; i++)
        rc = s_read_key (in, self, (size_t)i, problem);
    uint8_t end[8];
    if (rc == 0 && in->at != in->length - TRAILER_BYTES)
        rc = s_refuse (in, problem, "%s", "its keys end before its trailer");
    else if (rc == 0 && (s_in (in, end, sizeof end) || memcmp (end, END_MAGIC, 8) != 0))
        rc = s_refuse (in, problem, "its trailer is not %s", END_MAGIC);
    uint32_t stored, computed = in->crc;
    if (rc == 0 && pread (in->fd, end, 4, (off_t)in->at) != 4)
        rc = ps_problem_set (problem, 0, "cannot read it: %s", strerror (errno));
    if (rc == 0 && (stored = s_get32 (end)) != computed)
        rc = s_checksum_mismatch (problem, stored, computed);
    close (in->fd);
    free (in);
    if (rc)
        ps_checkpoint_destroy (&self);
    return self;
}

//  The job clock in the header of the file at path, without reading the
//  rest: 0, or -1 when it is not a checkpoint of our format and length
int
ps_checkpoint_peek_clock (const char *path, int64_t *clock)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    uint8_t header[HEADER_BYTES];
    struct stat info;
    bool whole = fstat (fd, &info) == 0 && pread (fd, header, sizeof header, 0) == HEADER_BYTES &&
                 memcmp (header, MAGIC, 8) == 0 &&
                 s_get32 (header + 8) >= PS_CHECKPOINT_OLDEST_VERSION &&
                 s_get32 (header + 8) <= PS_CHECKPOINT_VERSION &&
                 s_get64 (header + 16) == (uint64_t)info.st_size;
    close (fd);
    if (!whole)
        return -1;
    *clock = (int64_t)s_get64 (header + 56);
    return 0;
}
