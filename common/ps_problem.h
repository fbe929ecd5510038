/*  =========================================================================
    ps_problem - the one way psmq code reports what went wrong

    A failing function returns -1 (or NULL) and fills a ps_problem_t the
    caller passed in: a code and a message that names the bad value. The
    code is a PSMQ__ERR_CODE__* of proto/ps.proto where the problem can go
    back to a peer, 0 for local failures (a file, the command line). The
    caller owns the struct, usually on its stack; any thread may use its
    own. problem may be NULL when the caller does not want the detail.

    The worker library's public API keeps its own form (a ps_status_t and
    ps_worker_error), since its header uses plain C types only.
    ========================================================================= */

#ifndef PS_PROBLEM_H_INCLUDED
#define PS_PROBLEM_H_INCLUDED

#include "ps_limits.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int code;                       //  PSMQ__ERR_CODE__*, 0 for local failures
    char message[PS_MAX_ERROR_LEN]; //  names the bad value
    bool parsed;                    //  ps_codec_decode: the frame was protobuf,
                                    //  so seq and worker are the request's
    uint64_t seq;                   //  ps_codec_decode: the refused request's seq
    uint32_t worker;                //  ps_codec_decode: its worker
} ps_problem_t;

//  Fill problem (when not NULL) with code and a printf-style message;
//  returns -1 so that callers can write `return ps_problem_set (...)`
int ps_problem_set (ps_problem_t *problem, int code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

#endif
