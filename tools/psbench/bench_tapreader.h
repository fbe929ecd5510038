/*  =========================================================================
    bench_tapreader - a reader on a broker's tap, for the tap case

    A thread with a SUB socket on the broker's tap that takes every
    metadata record (no payload) as fast as it can, as pstap watch would:
    the load a watched tap puts on the broker. bench_tapreader_new finds
    the tap through the broker's INFO, starts the thread and waits until
    the broker counts the subscription, so that the timing after it sees
    a watched tap. The caller owns the reader; the thread touches only
    the socket and counter it was given.
    ========================================================================= */

#ifndef BENCH_TAPREADER_H_INCLUDED
#define BENCH_TAPREADER_H_INCLUDED

typedef struct _bench_tapreader_t bench_tapreader_t;

//  A reader on the tap of the broker at endpoint, subscribed and counted;
//  NULL when the broker has no tap or never counts the reader (said on
//  stderr), or when INFO or the thread fails
//  curve_secret and broker_key (NULL: none): CURVE keys for INFO and the
//  tap, as the library takes them
bench_tapreader_t *bench_tapreader_new (const char *endpoint, const char *curve_secret,
                                        const char *broker_key);

//  Stop the thread and free the reader; idempotent
void bench_tapreader_destroy (bench_tapreader_t **self_p);

#endif
