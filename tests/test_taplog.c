/*  =========================================================================
    test_taplog - the recording file format of pstap

    Usage, as `pstap record` and `pstap read` do it:

        ps_taplog_writer_t *writer = ps_taplog_writer_new (path, start_us, &problem);
        ps_taplog_writer_append (writer, topic, topic_size, frames, nframes, &problem);
        ps_taplog_writer_destroy (&writer);

        ps_taplog_reader_t *reader = ps_taplog_reader_new (path, &problem);
        while (ps_taplog_reader_next (reader, &entry, &problem) == PS_TAPLOG_RECORD)
            ...entry.topic, entry.frames[0] (the TapRecord), entry.frames[1..]
        ps_taplog_reader_destroy (&reader);

    The first test is that, for one message; the next records three tap
    messages and reads them back field by field. The others cut the last
    record at every byte (a killed recorder), flip every byte of a body (a
    damaged disk), and hand the reader files that are not recordings, of
    another version, or whose lengths lie, and check that it stops with
    the count of good records and a message that says where, never
    crashing.

    usage: build/test_taplog [--filter 'taplog/<test>']
    ========================================================================= */

#include "ps_taplog.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

//  A fresh path in the test's temporary directory
static const char *
s_path (char *path, size_t size, const char *name)
{
    const char *dir = getenv ("TMPDIR");
    snprintf (path, size, "%s/test_taplog.%d.%s", dir ? dir : "/tmp", (int)getpid (), name);
    return path;
}

//  Encode a small tap record into buffer; its size
static size_t
s_record (uint64_t number, int kind, int type, int64_t worker, uint8_t *buffer, size_t size)
{
    ps_tap_record_t record = PSMQ__TAP_RECORD__INIT;
    record.version = PS_TAP_VERSION;
    record.kind = kind;
    record.record = number;
    record.time_us = 1700000000000000ULL + number * 1000;
    record.type = type;
    record.worker = worker;
    record.seq = number;
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode_tap (&record, &msg), 0);
    cr_assert_leq (zmq_msg_size (&msg), size);
    size_t length = zmq_msg_size (&msg);
    memcpy (buffer, zmq_msg_data (&msg), length);
    zmq_msg_close (&msg);
    return length;
}

static ps_taplog_status_t s_read_all (const char *path, uint64_t *records, ps_problem_t *problem);

//  Write a recording of count push requests, the last one with a payload
//  frame; returns the file offset of the last record
static long
s_write (const char *path, int count)
{
    ps_problem_t problem = {0};
    ps_taplog_writer_t *writer = ps_taplog_writer_new (path, 1700000000000000ULL, &problem);
    cr_assert (writer, "%s", problem.message);
    long last = 0;
    for (int i = 1; i <= count; i++) {
        uint8_t encoded[256];
        char topic[PS_TAP_TOPIC_MAX];
        bool payload = i == count;
        size_t topic_size = ps_codec_tap_topic (PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__PUSH,
                                                i % 3, payload, topic);
        float gradient[4] = {1, 2, 3, (float)i};
        ps_taplog_frame_t frames[2] = {
            {encoded, s_record ((uint64_t)i, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__PUSH,
                                i % 3, encoded, sizeof encoded)},
            {gradient, sizeof gradient}};
        last = (long)ps_taplog_writer_bytes (writer);
        cr_assert_eq (
            ps_taplog_writer_append (writer, topic, topic_size, frames, payload ? 2 : 1, &problem),
            0, "%s", problem.message);
    }
    cr_assert_eq (ps_taplog_writer_destroy (&writer), 0);
    cr_assert_null (writer);
    //  Every record is in the file
    uint64_t records;
    cr_assert_eq (s_read_all (path, &records, &problem), PS_TAPLOG_END, "%s", problem.message);
    cr_assert_eq (records, (uint64_t)count);
    return last;
}

//  Read path to its end: the final status; good records and the problem
//  returned
static ps_taplog_status_t
s_read_all (const char *path, uint64_t *records, ps_problem_t *problem)
{
    ps_taplog_reader_t *reader = ps_taplog_reader_new (path, problem);
    cr_assert (reader, "%s", problem->message);
    ps_taplog_entry_t entry;
    ps_taplog_status_t status;
    while ((status = ps_taplog_reader_next (reader, &entry, problem)) == PS_TAPLOG_RECORD)
        cr_assert_geq (entry.nframes, 1);
    *records = ps_taplog_reader_records (reader);
    //  The reader stays where it stopped
    ps_problem_t again;
    cr_assert_eq (ps_taplog_reader_next (reader, &entry, &again), status);
    cr_assert_str_eq (again.message, problem->message);
    ps_taplog_reader_destroy (&reader);
    cr_assert_null (reader);
    return status;
}

Test (taplog, usage)
{
    char path[256];
    s_path (path, sizeof path, "usage");
    ps_problem_t problem;

    //  pstap record: one tap message as it came, its topic and its frames
    ps_taplog_writer_t *writer = ps_taplog_writer_new (path, 1700000000000000ULL, &problem);
    cr_assert_not_null (writer, "%s", problem.message);
    uint8_t encoded[256];
    ps_taplog_frame_t frame = {encoded,
                               s_record (1, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__PULL, 0,
                                         encoded, sizeof encoded)};
    cr_assert_eq (ps_taplog_writer_append (writer, "req.pull.0.", 11, &frame, 1, &problem), 0, "%s",
                  problem.message);
    cr_assert_eq (ps_taplog_writer_destroy (&writer), 0);

    //  pstap read: the same message back, then the end
    ps_taplog_reader_t *reader = ps_taplog_reader_new (path, &problem);
    cr_assert_not_null (reader, "%s", problem.message);
    ps_taplog_entry_t entry;
    cr_assert_eq (ps_taplog_reader_next (reader, &entry, &problem), PS_TAPLOG_RECORD);
    cr_assert_str_eq (entry.topic, "req.pull.0.");
    cr_assert_eq (entry.nframes, 1);
    cr_assert_eq (entry.frames[0].size, frame.size);
    cr_assert_eq (memcmp (entry.frames[0].data, encoded, frame.size), 0);
    cr_assert_eq (ps_taplog_reader_next (reader, &entry, &problem), PS_TAPLOG_END);
    ps_taplog_reader_destroy (&reader);
    cr_assert_null (reader);
    unlink (path);
}

Test (taplog, records_and_reads_back)
{
    char path[256];
    s_path (path, sizeof path, "round-trip");
    s_write (path, 3);

    ps_problem_t problem = {0};
    ps_taplog_reader_t *reader = ps_taplog_reader_new (path, &problem);
    cr_assert (reader, "%s", problem.message);
    cr_assert_eq (ps_taplog_reader_start_us (reader), 1700000000000000ULL);
    ps_codec_t *codec = ps_codec_new ();
    ps_taplog_entry_t entry;
    for (uint64_t i = 1; i <= 3; i++) {
        cr_assert_eq (ps_taplog_reader_next (reader, &entry, &problem), PS_TAPLOG_RECORD, "%s",
                      problem.message);
        char expected[PS_TAP_TOPIC_MAX];
        ps_codec_tap_topic (PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__PUSH, (int64_t)(i % 3),
                            i == 3, expected);
        cr_assert_str_eq (entry.topic, expected);
        cr_assert_eq (entry.topic_size, strlen (expected));
        ps_tap_record_t *record =
            ps_codec_decode_tap (codec, entry.frames[0].data, entry.frames[0].size, &problem);
        cr_assert (record, "%s", problem.message);
        cr_assert_eq (record->record, i);
        cr_assert_eq (record->worker, (int64_t)(i % 3));
        cr_assert_eq (entry.nframes, i == 3 ? 2 : 1);
    }
    //  The payload frame comes back byte for byte
    float gradient[4] = {1, 2, 3, 3};
    cr_assert_eq (entry.frames[1].size, sizeof gradient);
    cr_assert_eq (memcmp (entry.frames[1].data, gradient, sizeof gradient), 0);
    cr_assert_eq (ps_taplog_reader_next (reader, &entry, &problem), PS_TAPLOG_END);
    cr_assert_eq (ps_taplog_reader_records (reader), 3);
    ps_codec_destroy (&codec);
    ps_taplog_reader_destroy (&reader);
    unlink (path);
}

Test (taplog, the_crc_is_zlibs_crc32)
{
    //  zlib's crc32 is CRC-32/IEEE (reflected 0xEDB88320): its check value,
    //  the same whole or in pieces
    const Bytef *digits = (const Bytef *)"123456789";
    cr_assert_eq (crc32_z (0, digits, 9), 0xcbf43926u);
    cr_assert_eq (crc32_z (0, digits, 0), 0);
    cr_assert_eq (crc32_z (crc32_z (0, digits, 4), digits + 4, 5), 0xcbf43926u);

    //  A record's framing holds crc32 of its body, so common tools check it
    char path[256];
    s_path (path, sizeof path, "crc");
    s_write (path, 1);
    FILE *file = fopen (path, "rb");
    cr_assert (file);
    uint8_t bytes[512];
    size_t size = fread (bytes, 1, sizeof bytes, file);
    fclose (file);
    const uint8_t *framing = bytes + PS_TAPLOG_HEADER_BYTES;
    uint32_t length, crc;
    memcpy (&length, framing, 4); //  little-endian, as this machine
    memcpy (&crc, framing + 4, 4);
    cr_assert_eq (size, PS_TAPLOG_HEADER_BYTES + PS_TAPLOG_FRAMING_BYTES + length);
    cr_assert_eq (crc, crc32_z (0, framing + PS_TAPLOG_FRAMING_BYTES, length));
    unlink (path);
}

Test (taplog, a_torn_tail_is_reported_at_every_cut, .timeout = 20)
{
    char path[256], cut_path[256];
    s_path (path, sizeof path, "whole");
    s_path (cut_path, sizeof cut_path, "cut");
    long last = s_write (path, 4);
    FILE *file = fopen (path, "rb");
    cr_assert (file);
    uint8_t bytes[4096];
    size_t size = fread (bytes, 1, sizeof bytes, file);
    fclose (file);
    cr_assert_gt (size, (size_t)last);

    for (size_t cut = (size_t)last; cut < size; cut++) {
        file = fopen (cut_path, "wb");
        cr_assert_eq (fwrite (bytes, 1, cut, file), cut);
        fclose (file);
        uint64_t records;
        ps_problem_t problem = {0};
        ps_taplog_status_t status = s_read_all (cut_path, &records, &problem);
        cr_assert_eq (records, 3, "cut at %zu", cut);
        if (cut == (size_t)last)
            cr_assert_eq (status, PS_TAPLOG_END, "a cut between records is a clean end");
        else {
            cr_assert_eq (status, PS_TAPLOG_TORN, "cut at %zu: %s", cut, problem.message);
            char where[64];
            snprintf (where, sizeof where, "record at byte %ld: torn", last);
            cr_assert (strstr (problem.message, where), "cut at %zu: %s", cut, problem.message);
            cr_assert (strstr (problem.message, "(3 good records before it)"), "%s",
                       problem.message);
        }
    }
    unlink (path);
    unlink (cut_path);
}

Test (taplog, a_flipped_byte_is_a_crc_error)
{
    char path[256];
    s_path (path, sizeof path, "flip");
    long last = s_write (path, 3);
    FILE *file = fopen (path, "rb");
    uint8_t bytes[4096];
    size_t size = fread (bytes, 1, sizeof bytes, file);
    fclose (file);

    //  Every byte after the length field: the CRC itself and the body
    for (size_t at = (size_t)last + 4; at < size; at++) {
        bytes[at] ^= 0x20;
        file = fopen (path, "wb");
        fwrite (bytes, 1, size, file);
        fclose (file);
        bytes[at] ^= 0x20;
        uint64_t records;
        ps_problem_t problem = {0};
        cr_assert_eq (s_read_all (path, &records, &problem), PS_TAPLOG_CORRUPT, "flip at %zu", at);
        cr_assert_eq (records, 2);
        cr_assert (strstr (problem.message, "CRC 0x"), "%s", problem.message);
    }
    unlink (path);
}

//  Append one framed record with a correct CRC around body to file
static void
s_append_raw (FILE *file, const uint8_t *body, uint32_t length)
{
    uint8_t framing[8];
    uint32_t crc = (uint32_t)crc32_z (0, body, length);
    for (int i = 0; i < 4; i++) {
        framing[i] = (uint8_t)(length >> (8 * i));
        framing[4 + i] = (uint8_t)(crc >> (8 * i));
    }
    fwrite (framing, 1, 8, file);
    fwrite (body, 1, length, file);
}

Test (taplog, lengths_that_lie_are_corrupt_even_with_a_good_crc)
{
    struct {
        uint8_t body[32];
        uint32_t length;
        const char *says;
    } cases[] = {
        //  topic 1 byte "x", 0 frames
        {{1, 0, 'x', 0, 0, 0, 0, 0, 0, 0}, 10, "0 frames"},
        //  topic length 60 > PS_TAP_TOPIC_MAX
        {{60, 0, 'x', 1, 0, 0, 0, 0, 0, 0}, 10, "topic length 60"},
        //  1 frame said to be 200 bytes, 0 there
        {{1, 0, 'x', 1, 0, 0, 0, 200, 0, 0, 0}, 11, "frame 0 of 200 bytes does not fit"},
        //  2 frames said, 1 there
        {{1, 0, 'x', 2, 0, 0, 0, 0, 0, 0, 0}, 11, "frame 1 of 2 is missing"},
        //  bytes after the last frame
        {{1, 0, 'x', 1, 0, 0, 0, 0, 0, 0, 0, 9}, 12, "1 bytes after the last frame"},
        //  a body too short for any record
        {{0}, 3, "body length 3 is impossible"},
    };
    char path[256];
    s_path (path, sizeof path, "lies");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_write (path, 2);
        FILE *file = fopen (path, "ab");
        s_append_raw (file, cases[i].body, cases[i].length);
        fclose (file);
        uint64_t records;
        ps_problem_t problem = {0};
        cr_assert_eq (s_read_all (path, &records, &problem), PS_TAPLOG_CORRUPT, "case %zu", i);
        cr_assert_eq (records, 2);
        cr_assert (strstr (problem.message, cases[i].says), "case %zu: %s", i, problem.message);
    }
    //  A length of 4 GB on a short file: torn, and nothing near 4 GB allocated
    s_write (path, 1);
    FILE *file = fopen (path, "ab");
    fwrite ("\xff\xff\xff\x7f\0\0\0\0abc", 1, 11, file);
    fclose (file);
    uint64_t records;
    ps_problem_t problem = {0};
    cr_assert_eq (s_read_all (path, &records, &problem), PS_TAPLOG_TORN);
    cr_assert (strstr (problem.message, "after 3 of its 2147483647 body bytes"), "%s",
               problem.message);
    unlink (path);
}

Test (taplog, files_that_are_not_recordings)
{
    char path[256];
    ps_problem_t problem;
    s_path (path, sizeof path, "bad");
    struct {
        const char *bytes;
        size_t size;
        const char *says;
    } cases[] = {
        {"", 0, "not a pstap recording: 0 bytes, a header has 24"},
        {"PSTAPLOG\1\0\0\0", 12, "not a pstap recording: 12 bytes"},
        {"PCAPLOG!\1\0\0\0\x18\0\0\0\0\0\0\0\0\0\0\0", 24, "does not start with PSTAPLOG"},
        {"PSTAPLOG\2\0\0\0\x18\0\0\0\0\0\0\0\0\0\0\0", 24,
         "a version 2 recording; this pstap reads version 1"},
        {"PSTAPLOG\1\0\0\0\x20\0\0\0\0\0\0\0\0\0\0\0", 24, "header size 32, version 1 has 24"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *file = fopen (path, "wb");
        fwrite (cases[i].bytes, 1, cases[i].size, file);
        fclose (file);
        cr_assert_null (ps_taplog_reader_new (path, &problem), "case %zu", i);
        cr_assert (strstr (problem.message, cases[i].says), "case %zu: %s", i, problem.message);
        cr_assert (strstr (problem.message, path), "names the file: %s", problem.message);
    }
    unlink (path);
    cr_assert_null (ps_taplog_reader_new (path, &problem));
    cr_assert (strstr (problem.message, "cannot open") && strstr (problem.message, "No such file"),
               "%s", problem.message);
    cr_assert_null (ps_taplog_writer_new ("/nonexistent-dir/x.pstap", 0, &problem));
    cr_assert (strstr (problem.message, "cannot create /nonexistent-dir/x.pstap"), "%s",
               problem.message);
}

Test (taplog, the_writer_keeps_to_the_limits)
{
    char path[256];
    ps_problem_t problem;
    s_path (path, sizeof path, "limits");
    ps_taplog_writer_t *writer = ps_taplog_writer_new (path, 0, &problem);
    cr_assert (writer);
    uint8_t record[16] = {0};
    ps_taplog_frame_t frame = {record, sizeof record};
    char topic[PS_TAP_TOPIC_MAX + 1];
    memset (topic, 'a', sizeof topic);
    cr_assert_eq (ps_taplog_writer_append (writer, topic, PS_TAP_TOPIC_MAX, &frame, 1, &problem),
                  -1);
    cr_assert (strstr (problem.message, "topic of 48 bytes"), "%s", problem.message);
    cr_assert_eq (ps_taplog_writer_append (writer, "a\0b", 3, &frame, 1, &problem), -1);
    cr_assert_eq (ps_taplog_writer_append (writer, "t", 1, &frame, 0, &problem), -1);
    cr_assert (strstr (problem.message, "0 frames in a record"), "%s", problem.message);
    ps_taplog_frame_t huge = {record, (size_t)PS_MAX_ENVELOPE_BYTES + 1};
    cr_assert_eq (ps_taplog_writer_append (writer, "t", 1, &huge, 1, &problem), -1);
    cr_assert (strstr (problem.message, "tap record of 1048577 bytes"), "%s", problem.message);
    //  Refusals write nothing: the file holds the header and one good record
    cr_assert_eq (ps_taplog_writer_append (writer, "t", 1, &frame, 1, &problem), 0);
    //  topic length, "t", nframes, one frame's length and 16 bytes
    size_t body = 2 + 1 + 4 + 4 + sizeof record;
    cr_assert_eq (ps_taplog_writer_bytes (writer),
                  PS_TAPLOG_HEADER_BYTES + PS_TAPLOG_FRAMING_BYTES + body);
    ps_taplog_writer_destroy (&writer);
    uint64_t records;
    cr_assert_eq (s_read_all (path, &records, &problem), PS_TAPLOG_END);
    cr_assert_eq (records, 1);
    unlink (path);
}
