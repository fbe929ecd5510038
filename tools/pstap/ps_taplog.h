/*  =========================================================================
    ps_taplog - the file format of tap recordings (pstap record / read)

    A recording is a header followed by framed records, all integers
    little-endian:

        header   "PSTAPLOG"  u32 version (1)  u32 header size (24)
                 u64 start time, microseconds since 1970
        record   u32 body length  u32 CRC-32 of the body (zlib's crc32)  body
        body     u16 topic length  topic  u32 nframes
                 nframes x (u32 frame length, frame bytes)

    Frame 0 is the TapRecord protobuf as the broker published it; later
    frames are mirrored tensor payload (payload topics only). Every length
    is checked against common/ps_limits.h before anything is allocated.

    The writer appends each record with one write(2), so a recorder that is
    killed leaves at most one torn record at the end; the reader hands out
    records one by one and stops at a torn or corrupt tail with a message
    that says where, after the good records before it.

    Ownership: writers and readers are created by _new and freed by
    _destroy, which nulls the caller's pointer. The reader's records point
    into its own buffer and are valid until the next call. A writer or
    reader belongs to one thread. Failure: NULL or -1 (or a status) with a
    ps_problem_t (code 0) that names the file and the system's reason,
    or for the reader's records, the byte where it stopped.
    ========================================================================= */

#ifndef PS_TAPLOG_H_INCLUDED
#define PS_TAPLOG_H_INCLUDED

#include "ps_codec.h"
#include "ps_limits.h"
#include "ps_problem.h"

#include <stddef.h>
#include <stdint.h>

#define PS_TAPLOG_MAGIC "PSTAPLOG"
#define PS_TAPLOG_VERSION 1
//  Bytes of a version-1 header
#define PS_TAPLOG_HEADER_BYTES 24
//  Bytes before each body: length and CRC
#define PS_TAPLOG_FRAMING_BYTES 8
//  Frames in one record: the TapRecord and one per mirrored slice
#define PS_TAPLOG_MAX_FRAMES (1 + PS_MAX_SLICES)
//  Largest body: a record, its slices and every length field
#define PS_TAPLOG_MAX_BODY                                                                         \
    (2 + PS_TAP_TOPIC_MAX + 4 + 4LL * PS_TAPLOG_MAX_FRAMES + PS_MAX_ENVELOPE_BYTES +               \
     PS_MAX_MESSAGE_BYTES)

//  One frame of a record: borrowed bytes
typedef struct {
    const void *data;
    size_t size;
} ps_taplog_frame_t;

//  One record as read back; everything points into the reader
typedef struct {
    const char *topic;               //  NUL-terminated
    size_t topic_size;               //  its length
    const ps_taplog_frame_t *frames; //  frames[0] is the TapRecord
    size_t nframes;                  //  at least 1
    uint64_t offset;                 //  where the record starts in the file
} ps_taplog_entry_t;

typedef struct ps_taplog_writer_t ps_taplog_writer_t;

//  Create (or truncate) path and write the header with start_us. The
//  writer, or NULL with problem naming the file and the system's reason.
ps_taplog_writer_t *ps_taplog_writer_new (const char *path, uint64_t start_us,
                                          ps_problem_t *problem);
//  Append one record (topic, then nframes frames, frames[0] the TapRecord)
//  and hand it to the kernel. 0, or -1 with problem filled in (a limit, or
//  the write failed); after a failed write the writer refuses further
//  records.
int ps_taplog_writer_append (ps_taplog_writer_t *self, const char *topic, size_t topic_size,
                             const ps_taplog_frame_t *frames, size_t nframes,
                             ps_problem_t *problem);
//  Bytes written so far, header included
uint64_t ps_taplog_writer_bytes (const ps_taplog_writer_t *self);
//  Close the file, free, null the pointer. 0, or -1 when closing failed.
int ps_taplog_writer_destroy (ps_taplog_writer_t **self_p);

typedef struct ps_taplog_reader_t ps_taplog_reader_t;

//  Open path ("-" for stdin) and check the header. The reader, or NULL
//  with problem saying what is wrong with the file (no such file, not a
//  recording, another version).
ps_taplog_reader_t *ps_taplog_reader_new (const char *path, ps_problem_t *problem);
void ps_taplog_reader_destroy (ps_taplog_reader_t **self_p);
//  The header's start time, microseconds since 1970
uint64_t ps_taplog_reader_start_us (const ps_taplog_reader_t *self);

typedef enum {
    PS_TAPLOG_RECORD = 1,   //  entry filled in
    PS_TAPLOG_END = 0,      //  clean end of the file
    PS_TAPLOG_TORN = -1,    //  the file ends inside a record (problem says where)
    PS_TAPLOG_CORRUPT = -2, //  a CRC or a length is wrong (problem says where)
    PS_TAPLOG_IO = -3       //  the system failed to read, or out of memory
} ps_taplog_status_t;

//  The next record. After anything but PS_TAPLOG_RECORD the reader stays
//  at the end and returns the same status and problem again. The problem
//  says where ("record at byte 1553: torn: ... (17 good records before
//  it)"), not the file's name, which the caller knows.
ps_taplog_status_t ps_taplog_reader_next (ps_taplog_reader_t *self, ps_taplog_entry_t *entry,
                                          ps_problem_t *problem);
//  Good records read so far
uint64_t ps_taplog_reader_records (const ps_taplog_reader_t *self);

#endif
