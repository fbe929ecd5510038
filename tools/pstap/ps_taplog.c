/*  =========================================================================
    ps_taplog - the file format of tap recordings

    The writer builds each record (framing, topic, frames) in one reusable
    buffer and hands it to the kernel with one write(2): a recorder killed
    at any moment leaves whole records and at most one torn one, with no
    stdio buffer to lose. We do not fsync: a recording survives the
    recorder, not the machine, which is what a debugging tool needs.

    Each body carries a CRC-32 because a length field that was damaged
    would otherwise send the reader into garbage it cannot tell from data.
    The reader grows its buffer while it reads a body rather than
    allocating the length up front, so a damaged length costs no more
    memory than the bytes actually in the file. There is no resync after a
    bad record: a tap recording is written by one process in one pass, so
    damage means a torn tail or a broken disk, and stopping with the count
    of good records is the honest answer.

    The CRC-32 is zlib's crc32 (IEEE 802.3, reflected polynomial
    0xEDB88320), so that recordings can be checked with common tools.
    ========================================================================= */

#include "ps_taplog.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

//  The reader reads a body in steps of at most this much, growing its
//  buffer as the bytes arrive
#define READ_STEP (1 << 20)

// ------------------------------------------------------- little endian

static void
s_put16 (uint8_t *out, uint16_t value)
{
    out[0] = (uint8_t)value;
    out[1] = (uint8_t)(value >> 8);
}

static void
s_put32 (uint8_t *out, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)(value >> (8 * i));
}

static void
s_put64 (uint8_t *out, uint64_t value)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(value >> (8 * i));
}

static uint16_t
s_get16 (const uint8_t *in)
{
    return (uint16_t)(in[0] | in[1] << 8);
}

static uint32_t
s_get32 (const uint8_t *in)
{
    return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
}

static uint64_t
s_get64 (const uint8_t *in)
{
    return (uint64_t)s_get32 (in) | (uint64_t)s_get32 (in + 4) << 32;
}

//  Grow *buffer to hold at least size bytes. 0, or -1 out of memory.
static int
s_reserve (uint8_t **buffer, size_t *capacity, size_t size)
{
    if (size <= *capacity)
        return 0;
    size_t grown = *capacity ? *capacity : 4096;
    while (grown < size)
        grown *= 2;
    uint8_t *bigger = realloc (*buffer, grown);
    if (!bigger)
        return -1;
    *buffer = bigger;
    *capacity = grown;
    return 0;
}

// -------------------------------------------------------------- writer

struct ps_taplog_writer_t {
    int fd;          //  the file, -1 once closed
    char *path;      //  for messages
    uint8_t *buffer; //  one record being built
    size_t capacity; //  its size
    uint64_t bytes;  //  bytes written, header included
    bool broken;     //  a write failed: the tail may be torn, stop
};

//  Write all of it, retrying after signals and short writes
static int
s_write_all (int fd, const uint8_t *data, size_t size)
{
    while (size > 0) {
        ssize_t done = write (fd, data, size);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            return -1;
        data += done;
        size -= (size_t)done;
    }
    return 0;
}

ps_taplog_writer_t *
ps_taplog_writer_new (const char *path, uint64_t start_us, ps_problem_t *problem)
{
    assert (path);
    ps_taplog_writer_t *self = calloc (1, sizeof *self);
    if (!self || !(self->path = strdup (path))) {
        free (self);
        ps_problem_set (problem, 0, "out of memory");
        return NULL;
    }
    self->fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (self->fd < 0) {
        ps_problem_set (problem, 0, "cannot create %s: %s", path, strerror (errno));
        ps_taplog_writer_destroy (&self);
        return NULL;
    }
    uint8_t header[PS_TAPLOG_HEADER_BYTES];
    memcpy (header, PS_TAPLOG_MAGIC, 8);
    s_put32 (header + 8, PS_TAPLOG_VERSION);
    s_put32 (header + 12, PS_TAPLOG_HEADER_BYTES);
    s_put64 (header + 16, start_us);
    if (s_write_all (self->fd, header, sizeof header)) {
        ps_problem_set (problem, 0, "cannot write to %s: %s", path, strerror (errno));
        ps_taplog_writer_destroy (&self);
        return NULL;
    }
    self->bytes = sizeof header;
    return self;
}

int
ps_taplog_writer_destroy (ps_taplog_writer_t **self_p)
{
    assert (self_p);
    ps_taplog_writer_t *self = *self_p;
    if (!self)
        return 0;
    int rc = self->fd >= 0 ? close (self->fd) : 0;
    free (self->buffer);
    free (self->path);
    free (self);
    *self_p = NULL;
    return rc ? -1 : 0;
}

//  Check a record against the limits; its body size, or -1 with problem
static int64_t
s_body_size (const char *topic, size_t topic_size, const ps_taplog_frame_t *frames, size_t nframes,
             ps_problem_t *problem)
{
    if (topic_size >= PS_TAP_TOPIC_MAX || memchr (topic, 0, topic_size))
        return ps_problem_set (problem, 0, "topic of %zu bytes: at most %d, without NUL",
                               topic_size, PS_TAP_TOPIC_MAX - 1);
    if (nframes < 1 || nframes > PS_TAPLOG_MAX_FRAMES)
        return ps_problem_set (problem, 0, "%zu frames in a record: 1 to %d", nframes,
                               PS_TAPLOG_MAX_FRAMES);
    if (frames[0].size > PS_MAX_ENVELOPE_BYTES)
        return ps_problem_set (problem, 0, "tap record of %zu bytes, limit %d", frames[0].size,
                               PS_MAX_ENVELOPE_BYTES);
    int64_t size = 2 + (int64_t)topic_size + 4;
    for (size_t i = 0; i < nframes; i++) {
        if (frames[i].size > (size_t)PS_MAX_FRAME_BYTES)
            return ps_problem_set (problem, 0, "frame %zu of %zu bytes, limit %lld", i,
                                   frames[i].size, PS_MAX_FRAME_BYTES);
        //  Each term is bounded, so the sum cannot overflow before we test it
        size += 4 + (int64_t)frames[i].size;
        if (size > PS_TAPLOG_MAX_BODY)
            return ps_problem_set (problem, 0, "record of more than %lld bytes",
                                   PS_TAPLOG_MAX_BODY);
    }
    return size;
}

int
ps_taplog_writer_append (ps_taplog_writer_t *self, const char *topic, size_t topic_size,
                         const ps_taplog_frame_t *frames, size_t nframes, ps_problem_t *problem)
{
    assert (self);
    assert (topic || topic_size == 0);
    assert (frames || nframes == 0);
    if (self->broken)
        return ps_problem_set (problem, 0, "%s: an earlier write failed", self->path);
    int64_t body = s_body_size (topic, topic_size, frames, nframes, problem);
    if (body < 0)
        return -1;
    size_t total = PS_TAPLOG_FRAMING_BYTES + (size_t)body;
    if (s_reserve (&self->buffer, &self->capacity, total))
        return ps_problem_set (problem, 0, "out of memory for a record of %zu bytes", total);
    uint8_t *out = self->buffer + PS_TAPLOG_FRAMING_BYTES;
    s_put16 (out, (uint16_t)topic_size);
    memcpy (out + 2, topic, topic_size);
    out += 2 + topic_size;
    s_put32 (out, (uint32_t)nframes);
    out += 4;
    for (size_t i = 0; i < nframes; i++) {
        s_put32 (out, (uint32_t)frames[i].size);
        if (frames[i].size)
            memcpy (out + 4, frames[i].data, frames[i].size);
        out += 4 + frames[i].size;
    }
    s_put32 (self->buffer, (uint32_t)body);
    s_put32 (self->buffer + 4, (uint32_t)crc32_z (0, self->buffer + 8, (size_t)body));
    if (s_write_all (self->fd, self->buffer, total)) {
        self->broken = true;
        return ps_problem_set (problem, 0, "cannot write to %s: %s", self->path, strerror (errno));
    }
    self->bytes += total;
    return 0;
}

uint64_t
ps_taplog_writer_bytes (const ps_taplog_writer_t *self)
{
    assert (self);
    return self->bytes;
}

// -------------------------------------------------------------- reader

struct ps_taplog_reader_t {
    FILE *file;                   //  the recording
    bool owned;                   //  we opened it (not stdin)
    uint64_t start_us;            //  from the header
    uint64_t offset;              //  file offset of the next record
    uint64_t records;             //  good records so far
    uint8_t *body;                //  the current record's body
    size_t capacity;              //  its size
    ps_taplog_frame_t *frames;    //  the current record's frames
    size_t frames_capacity;       //  room in frames
    char topic[PS_TAP_TOPIC_MAX]; //  the current topic, NUL-terminated
    ps_taplog_status_t status;    //  PS_TAPLOG_RECORD until the end
    ps_problem_t stop;            //  why we stopped, repeated on each call
};

//  Read up to size bytes; how many arrived (fewer only at end or error)
static size_t
s_read (FILE *file, void *data, size_t size)
{
    return fread (data, 1, size, file);
}

ps_taplog_reader_t *
ps_taplog_reader_new (const char *path, ps_problem_t *problem)
{
    assert (path);
    ps_taplog_reader_t *self = calloc (1, sizeof *self);
    if (!self) {
        ps_problem_set (problem, 0, "out of memory");
        return NULL;
    }
    self->status = PS_TAPLOG_RECORD;
    bool stdin_wanted = strcmp (path, "-") == 0;
    self->file = stdin_wanted ? stdin : fopen (path, "rb");
    self->owned = !stdin_wanted;
    if (!self->file) {
        ps_problem_set (problem, 0, "cannot open %s: %s", path, strerror (errno));
        ps_taplog_reader_destroy (&self);
        return NULL;
    }
    uint8_t header[PS_TAPLOG_HEADER_BYTES];
    size_t got = s_read (self->file, header, sizeof header);
    int rc = 0;
    if (got < sizeof header)
        rc = ps_problem_set (problem, 0, "%s is not a pstap recording: %zu bytes, a header has %d",
                             path, got, PS_TAPLOG_HEADER_BYTES);
    else if (memcmp (header, PS_TAPLOG_MAGIC, 8) != 0)
        rc = ps_problem_set (problem, 0, "%s is not a pstap recording: it does not start with %s",
                             path, PS_TAPLOG_MAGIC);
    else if (s_get32 (header + 8) != PS_TAPLOG_VERSION)
        rc =
            ps_problem_set (problem, 0, "%s is a version %u recording; this pstap reads version %d",
                            path, s_get32 (header + 8), PS_TAPLOG_VERSION);
    else if (s_get32 (header + 12) != PS_TAPLOG_HEADER_BYTES)
        rc = ps_problem_set (problem, 0, "%s: header size %u, version %d has %d", path,
                             s_get32 (header + 12), PS_TAPLOG_VERSION, PS_TAPLOG_HEADER_BYTES);
    if (rc) {
        ps_taplog_reader_destroy (&self);
        return NULL;
    }
    self->start_us = s_get64 (header + 16);
    self->offset = PS_TAPLOG_HEADER_BYTES;
    return self;
}

uint64_t
ps_taplog_reader_start_us (const ps_taplog_reader_t *self)
{
    assert (self);
    return self->start_us;
}

void
ps_taplog_reader_destroy (ps_taplog_reader_t **self_p)
{
    assert (self_p);
    ps_taplog_reader_t *self = *self_p;
    if (!self)
        return;
    if (self->file && self->owned)
        fclose (self->file);
    free (self->body);
    free (self->frames);
    free (self);
    *self_p = NULL;
}

//  Stop for good with this status and message
static ps_taplog_status_t s_stop (ps_taplog_reader_t *self, ps_taplog_status_t status,
                                  const char *format, ...) __attribute__ ((format (printf, 3, 4)));

static ps_taplog_status_t
s_stop (ps_taplog_reader_t *self, ps_taplog_status_t status, const char *format, ...)
{
    char what[200];
    va_list args;
    va_start (args, format);
    vsnprintf (what, sizeof what, format, args);
    va_end (args);
    ps_problem_set (&self->stop, 0, "record at byte %llu: %s (%llu good records before it)",
                    (unsigned long long)self->offset, what, (unsigned long long)self->records);
    self->status = status;
    return status;
}

//  Read a body of length bytes, growing the buffer only as bytes arrive
static ps_taplog_status_t
s_read_body (ps_taplog_reader_t *self, size_t length)
{
    size_t done = 0;
    while (done < length) {
        size_t step = length - done < READ_STEP ? length - done : READ_STEP;
        if (s_reserve (&self->body, &self->capacity, done + step))
            return s_stop (self, PS_TAPLOG_IO, "out of memory for %zu bytes", done + step);
        size_t got = s_read (self->file, self->body + done, step);
        done += got;
        if (got < step) {
            if (ferror (self->file))
                return s_stop (self, PS_TAPLOG_IO, "read failed: %s", strerror (errno));
            return s_stop (self, PS_TAPLOG_TORN,
                           "torn: the file ends after %zu of its %zu body bytes", done, length);
        }
    }
    return PS_TAPLOG_RECORD;
}

//  Split a checked body into topic and frames
static ps_taplog_status_t
s_parse_body (ps_taplog_reader_t *self, size_t length, ps_taplog_entry_t *entry)
{
    const uint8_t *body = self->body, *end = body + length;
    size_t topic_size = s_get16 (body);
    if (topic_size >= PS_TAP_TOPIC_MAX || 2 + topic_size + 4 > length)
        return s_stop (self, PS_TAPLOG_CORRUPT, "topic length %zu does not fit", topic_size);
    memcpy (self->topic, body + 2, topic_size);
    self->topic[topic_size] = 0;
    const uint8_t *at = body + 2 + topic_size;
    uint32_t nframes = s_get32 (at);
    at += 4;
    if (nframes < 1 || nframes > PS_TAPLOG_MAX_FRAMES)
        return s_stop (self, PS_TAPLOG_CORRUPT, "%u frames, expected 1 to %d", nframes,
                       PS_TAPLOG_MAX_FRAMES);
    if (nframes > self->frames_capacity) {
        ps_taplog_frame_t *frames = realloc (self->frames, nframes * sizeof *frames);
        if (!frames)
            return s_stop (self, PS_TAPLOG_IO, "out of memory for %u frames", nframes);
        self->frames = frames;
        self->frames_capacity = nframes;
    }
    for (uint32_t i = 0; i < nframes; i++) {
        if (end - at < 4)
            return s_stop (self, PS_TAPLOG_CORRUPT, "frame %u of %u is missing", i, nframes);
        size_t size = s_get32 (at);
        at += 4;
        size_t limit = i == 0 ? PS_MAX_ENVELOPE_BYTES : (size_t)PS_MAX_FRAME_BYTES;
        if (size > limit || size > (size_t)(end - at))
            return s_stop (self, PS_TAPLOG_CORRUPT, "frame %u of %zu bytes does not fit", i, size);
        self->frames[i] = (ps_taplog_frame_t){at, size};
        at += size;
    }
    if (at != end)
        return s_stop (self, PS_TAPLOG_CORRUPT, "%zu bytes after the last frame",
                       (size_t)(end - at));
    *entry = (ps_taplog_entry_t){self->topic, topic_size, self->frames, nframes, self->offset};
    return PS_TAPLOG_RECORD;
}

ps_taplog_status_t
ps_taplog_reader_next (ps_taplog_reader_t *self, ps_taplog_entry_t *entry, ps_problem_t *problem)
{
    assert (self);
    assert (entry);
    if (self->status == PS_TAPLOG_RECORD) {
        uint8_t framing[PS_TAPLOG_FRAMING_BYTES];
        size_t got = s_read (self->file, framing, sizeof framing);
        if (got == 0 && !ferror (self->file)) {
            self->status = PS_TAPLOG_END;
            self->stop.message[0] = '\0';
        }
        else if (got < sizeof framing)
            s_stop (self, ferror (self->file) ? PS_TAPLOG_IO : PS_TAPLOG_TORN,
                    "torn: the file ends after %zu of its %d framing bytes", got,
                    PS_TAPLOG_FRAMING_BYTES);
        else {
            uint32_t length = s_get32 (framing);
            if (length < 2 + 4 + 4 || length > PS_TAPLOG_MAX_BODY)
                s_stop (self, PS_TAPLOG_CORRUPT, "body length %u is impossible", length);
            else if (s_read_body (self, length) == PS_TAPLOG_RECORD) {
                uint32_t crc = (uint32_t)crc32_z (0, self->body, length);
                if (crc != s_get32 (framing + 4))
                    s_stop (self, PS_TAPLOG_CORRUPT, "CRC 0x%08x, the body's is 0x%08x",
                            s_get32 (framing + 4), crc);
                else if (s_parse_body (self, length, entry) == PS_TAPLOG_RECORD) {
                    self->records++;
                    self->offset += PS_TAPLOG_FRAMING_BYTES + length;
                    return PS_TAPLOG_RECORD;
                }
            }
        }
    }
    if (problem)
        *problem = self->stop;
    return self->status;
}

uint64_t
ps_taplog_reader_records (const ps_taplog_reader_t *self)
{
    assert (self);
    return self->records;
}
