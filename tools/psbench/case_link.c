/*  =========================================================================
    case_link - push+pull over a rate-limited link (see case_link.h)

    Host a holds psbench's worker threads and host b the broker. Rather
    than start a worker process on a, the main thread enters a's network
    namespace (ps_netns_enter) for the case: the worker threads that
    bench_run starts, and the libzmq threads their contexts start, are on
    a too, and the brokers are started through `ip netns exec b` (the
    options' broker_prefix), bound to b's address and admitting a's
    (protected mode, no keys). Nothing else of bench_run changes, so the
    figure is pushpull_<size>'s over the link.

    Each size runs twice at each rate: in f32, then with the key in bf16
    on the wire (issue 15: a 64 MB model's step in bf16 at most 0.55x of
    f32's on 1 Gbit/s). The second prints its step and the ratio of the
    two steps, both from this run.
    ========================================================================= */

#include "case_link.h"
#include "bench_figure.h"
#include "bench_run.h"
#include "ps_cli.h"
#include "ps_dtype.h"
#include "ps_netns.h"

#include <stdint.h>
#include <stdio.h>

//  The rates, bits per second, and their names in the figures
static const struct {
    uint64_t bits;
    const char *name;
} s_rates[] = {{1000000000ull, "1gbit"}, {10000000000ull, "10gbit"}};

//  One figure: size bytes in wire's dtype at the rate the link has now;
//  its median step in *step_ms. 0 or -1
static int
s_link (const bench_options_t *options, const bench_plan_t *plan, const char *rate_name,
        uint64_t rate, size_t bytes, ps_wire_dtype_t wire, double *step_ms)
{
    char size_name[32], name[80], sub[96];
    snprintf (name, sizeof name, "link_%s_%s%s%s", rate_name,
              ps_cli_size_name (bytes, size_name, sizeof size_name), wire == PS_WIRE_F32 ? "" : ".",
              wire == PS_WIRE_F32 ? "" : ps_dtype_name ((int)wire));
    bench_result_t result = {.reps = 0};
    bench_spec_t spec = {.threads = 1, .bytes = bytes, .wire = (int)wire};
    if (bench_run (options, plan, &spec, &result)) {
        fprintf (stderr, "psbench: %s failed\n", name);
        return -1;
    }
    //  The bytes that cross the link: 2 per element in bf16
    double wire_bytes = (double)(bytes / sizeof (float) * ps_dtype_size ((int)wire));
    double fraction[BENCH_MAX_REPS], ms[BENCH_MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++) {
        double steps = result.steps[rep] > 0 ? result.steps[rep] : 1;
        ms[rep] = result.wall[rep] * 1000 / steps;
        fraction[rep] = steps * 2.0 * wire_bytes * 8 / result.wall[rep] / (double)rate;
    }
    char unit[48];
    snprintf (unit, sizeof unit, "of %g Gbit/s", (double)rate / 1e9);
    bench_figure (name, bench_quantile (fraction, (size_t)result.reps, 0.5), unit);
    snprintf (sub, sizeof sub, "%s.step", name);
    *step_ms = bench_quantile (ms, (size_t)result.reps, 0.5);
    bench_figure (sub, *step_ms, "ms");
    fflush (stdout);
    return 0;
}

//  A size at one rate in f32, then in bf16 on the wire, and the ratio of
//  their steps; the failures
static int
s_link_dtypes (const bench_options_t *options, const bench_plan_t *plan, const char *rate_name,
               uint64_t rate, size_t bytes)
{
    double f32_ms = 0, bf16_ms = 0;
    if (s_link (options, plan, rate_name, rate, bytes, PS_WIRE_F32, &f32_ms))
        return 1;
    if (s_link (options, plan, rate_name, rate, bytes, PS_WIRE_BF16, &bf16_ms))
        return 1;
    char size_name[32], name[96];
    snprintf (name, sizeof name, "link_%s_%s.bf16_step_vs_f32", rate_name,
              ps_cli_size_name (bytes, size_name, sizeof size_name));
    bench_figure (name, f32_ms > 0 ? bf16_ms / f32_ms : 0, "x (issue 15: <= 0.55 at 1gbit, 64m)");
    fflush (stdout);
    return 0;
}

int
case_link (const bench_options_t *options, const bench_plan_t *plan, const bench_yardstick_t *yard)
{
    enum { HOST_WORKER, HOST_BROKER };
    ps_problem_t problem = {0};
    ps_netns_sweep ("lb");
    ps_netns_t *net = ps_netns_new ("lb", 2, &problem);
    if (!net) {
        fprintf (stderr, "psbench: link: cannot make the hosts: %s\n", problem.message);
        return 1;
    }
    char *none[] = {NULL};
    char *prefix[PS_NETNS_PREFIX + 1];
    ps_netns_command (net, HOST_BROKER, none, prefix, PS_NETNS_PREFIX + 1);
    bench_options_t link = *options;
    link.broker_prefix = prefix;
    link.broker_bind = ps_netns_address (net, HOST_BROKER);
    link.allow_from = ps_netns_address (net, HOST_WORKER);
    printf ("# link: worker on %s, psbroker on %s, one veth pair with a tbf each way\n",
            ps_netns_address (net, HOST_WORKER), ps_netns_address (net, HOST_BROKER));

    size_t sizes[BENCH_MAX_SIZES] = {plan->link_bytes};
    size_t nsizes = 1;
    if (options->nsizes) {
        nsizes = options->nsizes;
        for (size_t i = 0; i < nsizes; i++)
            sizes[i] = options->sizes[i];
    }
    int failures = 0;
    int saved = -1;
    if (ps_netns_enter (net, HOST_WORKER, &saved, &problem)) {
        fprintf (stderr, "psbench: link: %s\n", problem.message);
        failures = 1;
    }
    for (size_t r = 0; r < sizeof s_rates / sizeof s_rates[0] && saved != -1; r++) {
        if (ps_netns_rate (net, HOST_WORKER, s_rates[r].bits, &problem)) {
            fprintf (stderr, "psbench: link: %s\n", problem.message);
            failures++;
            continue;
        }
        for (size_t i = 0; i < nsizes; i++)
            failures += s_link_dtypes (&link, plan, s_rates[r].name, s_rates[r].bits, sizes[i]);
    }
    if (ps_netns_leave (&saved, &problem)) {
        fprintf (stderr, "psbench: link: %s\n", problem.message);
        failures++;
    }
    ps_netns_destroy (&net);
    return failures;
}
