/*  =========================================================================
    ps_resources - what the machine gives the broker: memory and file
    descriptors, and sizes worded for people

    The broker bounds its store by a share of the machine's memory and its
    connections by its descriptor limit (docs/security.md, "Limits"); this
    module reads both, raises the descriptor limit as far as the hard one
    allows (as Redis does at start), and words byte counts for the errors
    and the log ("2 GiB", "2.1 GiB", "256 MiB").

    Stateless; any thread. Nothing here fails loudly: what cannot be read
    comes back as 0 (unknown), and the caller chooses a fallback.
    ========================================================================= */

#ifndef PS_RESOURCES_H_INCLUDED
#define PS_RESOURCES_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  Bytes of memory this process may use: the machine's (physical pages
//  times the page size), or its cgroup's limit when that is lower (a
//  container sees the machine's RAM but may use only its own). 0 unknown
uint64_t ps_resources_ram (void);
//  The store's default limit: PS_DEFAULT_STORE_PERCENT of ps_resources_ram,
//  at most PS_MAX_STORE_BYTES (all of that when memory is unknown)
uint64_t ps_resources_default_store (void);
//  percent (1 .. 100) of ps_resources_ram, at most PS_MAX_STORE_BYTES;
//  0 when memory is unknown
uint64_t ps_resources_share (double percent);

//  Raise the soft limit on open descriptors to the hard limit (or, when
//  that is unlimited, to the kernel's nr_open). The soft limit before and
//  after into *before and *after; 0, or -1 when it could not be raised
//  (*after is then the limit in force)
int ps_resources_raise_fd_limit (uint64_t *before, uint64_t *after);
//  The soft limit on open descriptors now, 0 when unknown or unlimited
uint64_t ps_resources_fd_limit (void);
//  Descriptors this process has open now (entries of /proc/self/fd), 0
//  when unknown
uint64_t ps_resources_open_fds (void);

//  bytes worded with a binary unit and at most one decimal: "512 bytes",
//  "64 KiB", "2.1 GiB"; writes into text (32 bytes are enough) and returns it
const char *ps_resources_bytes (uint64_t bytes, char *text, size_t size);

#endif
