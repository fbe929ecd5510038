/*  =========================================================================
    pstap_options - pstap's command line: the options a subcommand takes,
    checked and read into one struct

    main reads the command line once into a pstap_options_t (on its stack)
    and hands every subcommand a const pointer to it: nothing writes it
    after pstap_options_parse. Its strings point into argv, or into the
    environment (the broker from PSMQ_BROKER, the keys from
    PSMQ_CURVE_SECRET and PSMQ_BROKER_KEY). One thread.
    Failure: pstap_options_parse prints the problem on stderr, naming the
    option, and returns 2, pstap's exit status for a bad command line.
    ========================================================================= */

#ifndef PSTAP_OPTIONS_H_INCLUDED
#define PSTAP_OPTIONS_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

//  Longest single wait of any of pstap's loops, so that a signal
//  (zsys_interrupted) is seen soon
#define PSTAP_POLL_MS 100

//  Which options a subcommand takes, one bit each
enum {
    PSTAP_O_BROKER = 1 << 0,
    PSTAP_O_TAP = 1 << 1,
    PSTAP_O_TIMEOUT = 1 << 2,
    PSTAP_O_FILTER = 1 << 3,
    PSTAP_O_COUNT = 1 << 4,
    PSTAP_O_JSON = 1 << 5,
    PSTAP_O_PAYLOAD = 1 << 6,
    PSTAP_O_BATCH = 1 << 7,
    PSTAP_O_ITERATIONS = 1 << 8,
    PSTAP_O_INTERVAL = 1 << 9,
    PSTAP_O_WRITE = 1 << 10,
    PSTAP_O_READ = 1 << 11,
    PSTAP_O_VIEW = 1 << 12,
    PSTAP_O_MEMBER_ONLY = 1 << 13,
    PSTAP_O_KEYS = 1 << 14, //  --curve-secret, --broker-key
    PSTAP_O_DURATION = 1 << 15,
    //  What every subcommand that reads a live broker takes
    PSTAP_O_CONNECT =
        PSTAP_O_BROKER | PSTAP_O_TAP | PSTAP_O_TIMEOUT | PSTAP_O_MEMBER_ONLY | PSTAP_O_KEYS
};

//  What happens to the records that pass the filter
typedef enum {
    PSTAP_VIEW_WATCH,  //  one line (or JSON object) each
    PSTAP_VIEW_STATS,  //  counted, for one snapshot
    PSTAP_VIEW_TOP,    //  counted, per worker and key, for rates
    PSTAP_VIEW_RECORD, //  written to a file
    PSTAP_VIEW_TRACE,  //  drawn in a Chrome trace
} pstap_view_t;

typedef struct {
    const char *command;      //  the subcommand
    const char *broker;       //  --broker: brokers, comma-separated; taps through INFO
    const char *tap;          //  --tap: taps themselves, comma-separated
    bool member_only;         //  --member-only: not the rest of the broker's group
    int timeout_ms;           //  bound on reaching either
    const char *filter;       //  -f, ps_tapfilter syntax
    uint64_t count;           //  -c: stop after this many records, 0 never
    bool json;                //  --json
    bool payload;             //  --payload: tensor frames too
    bool batch;               //  --batch: plain blocks, no screen control
    uint64_t iterations;      //  -n: refreshes of top and clock, 0 forever
    int interval_ms;          //  --interval-ms
    int duration_ms;          //  --duration-ms: stop after this long, 0 never
    const char *write_path;   //  -w
    const char *read_path;    //  -r
    pstap_view_t view;        //  --view: what read shows
    const char *curve_secret; //  --curve-secret: our CURVE secret key file
    const char *broker_key;   //  --broker-key: the broker's public key (file or text)
    //  Both keys are PSMQ_CURVE_SECRET's and PSMQ_BROKER_KEY's (neither flag given)
    bool keys_from_environment;
} pstap_options_t;

//  Read the options of subcommand command (argv[0]), which takes the
//  PSTAP_O_* bits in allowed, into self: 0, -1 when --help was asked for,
//  or 2 (a usage error, said on stderr)
int pstap_options_parse (pstap_options_t *self, const char *command, unsigned allowed, int argc,
                         char *argv[]);
//  The lines of --help for the options in allowed, and the filter syntax
//  when it takes -f
void pstap_options_help (FILE *out, unsigned allowed);

#endif
