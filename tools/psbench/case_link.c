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
    ========================================================================= */

#include "case_link.h"
#include "bench_figure.h"
#include "bench_run.h"
#include "ps_cli.h"
#include "ps_netns.h"

#include <stdint.h>
#include <stdio.h>

//  The rates, bits per second, and their names in the figures
static const struct {
    uint64_t bits;
    const char *name;
} s_rates[] = {{1000000000ull, "1gbit"}, {10000000000ull, "10gbit"}};

//  One figure: size bytes at the rate the link has now; 0 or -1
static int
s_link (const bench_options_t *options, const bench_plan_t *plan, const char *rate_name,
        uint64_t rate, size_t bytes)
{
    char size_name[32], name[64], sub[80];
    snprintf (name, sizeof name, "link_%s_%s", rate_name,
              ps_cli_size_name (bytes, size_name, sizeof size_name));
    bench_result_t result = {.reps = 0};
    bench_spec_t spec = {.threads = 1, .bytes = bytes};
    if (bench_run (options, plan, &spec, &result)) {
        fprintf (stderr, "psbench: %s failed\n", name);
        return -1;
    }
    double fraction[BENCH_MAX_REPS], ms[BENCH_MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++) {
        double steps = result.steps[rep] > 0 ? result.steps[rep] : 1;
        ms[rep] = result.wall[rep] * 1000 / steps;
        fraction[rep] = steps * 2.0 * (double)bytes * 8 / result.wall[rep] / (double)rate;
    }
    char unit[48];
    snprintf (unit, sizeof unit, "of %g Gbit/s", (double)rate / 1e9);
    bench_figure (name, bench_quantile (fraction, (size_t)result.reps, 0.5), unit);
    snprintf (sub, sizeof sub, "%s.step", name);
    bench_figure (sub, bench_quantile (ms, (size_t)result.reps, 0.5), "ms");
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
            failures += s_link (&link, plan, s_rates[r].name, s_rates[r].bits, sizes[i]) != 0;
    }
    if (ps_netns_leave (&saved, &problem)) {
        fprintf (stderr, "psbench: link: %s\n", problem.message);
        failures++;
    }
    ps_netns_destroy (&net);
    return failures;
}
