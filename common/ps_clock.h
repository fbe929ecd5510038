/*  =========================================================================
    ps_clock - the monotonic clock in seconds, for timing what a program
    does (waits, rates, progress): never the wall clock, which may jump

    Any thread; owns nothing.
    ========================================================================= */

#ifndef PS_CLOCK_H_INCLUDED
#define PS_CLOCK_H_INCLUDED

//  Seconds on CLOCK_MONOTONIC, with nanoseconds as the fraction
double ps_clock_seconds (void);

#endif
