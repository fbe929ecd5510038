/*  =========================================================================
    ps_checkpoint_dir - a broker's folder of checkpoint files: its lock,
    the newest file that reads whole, the files kept, set aside or deleted

    psbroker --checkpoint DIR keeps its checkpoints in DIR, as files of
    ps_checkpoint.h's format and names; this module decides which of them
    count:
      - a broker holds a lock on DIR/checkpoint.lock while it runs, so
        that two never share a folder; taking it deletes the .tmp files a
        killed broker left (ps_checkpoint_prepare_dir)
      - a start loads the newest file that reads whole; the newer ones
        refused on the way are renamed NAME.refused, kept for a look, out
        of the rotation (ps_checkpoint_load_newest)
      - a group's rollback loads the newest file of one job clock
        (ps_checkpoint_load_clock; one that does not read whole is renamed
        NAME.refused) and renames the files newer than it
        NAME.discarded, a future the group threw away
        (ps_checkpoint_discard_after)
      - once a new file is durable the older ones are deleted but the
        newest PS_CHECKPOINT_KEEP (ps_checkpoint_prune)
    The newest file is the one of the highest number, and the next number
    to write is past every name of ours, the files set aside included.

    It keeps no state: each call reads the folder anew. A checkpoint it
    loads is the caller's (ps_checkpoint_destroy), and so is the lock's
    file descriptor (close it to let go). The folder is changed by one
    thread at a time: the ROUTER loop's at start and in a rollback (which
    first waits for or gives up the write under way), the checkpoint
    writer's after each write (ps_checkpoint_write, then the prune).
    Failures fill a ps_problem_t (code 0: local) that names the folder and
    why; refused files and failed renames are logged as warnings; never
    an abort.
    ========================================================================= */

#ifndef PS_CHECKPOINT_DIR_H_INCLUDED
#define PS_CHECKPOINT_DIR_H_INCLUDED

#include "ps_checkpoint.h"
#include "ps_limits.h"
#include "ps_problem.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

//  Make dir usable and hold it: create it (and its parents) with mode 0700
//  when missing, check that it is a directory we may write, take an
//  exclusive flock on DIR/checkpoint.lock (which then says our pid) so
//  that no other broker writes there meanwhile, then delete the .tmp files
//  a killed broker left. The lock's file descriptor, which the caller
//  closes to let go (a process that dies lets go too), or -1 with problem
//  naming dir and why (another broker's pid when it holds the lock).
int ps_checkpoint_prepare_dir (const char *dir, ps_problem_t *problem);

//  Clocks ps_checkpoint_load_clock names when it finds none to load
#define PS_CHECKPOINT_NAMED 8

//  What ps_checkpoint_load_newest (or _load_clock) found
typedef struct {
    char path[PATH_MAX];            //  the file loaded, "" when none
    uint64_t sequence;              //  its number (load_clock)
    uint64_t next_sequence;         //  the number of the next file to write
    uint32_t refused;               //  newer files refused (and renamed .refused)
    char why[2 * PS_MAX_ERROR_LEN]; //  the newest refused file and why, or ""
} ps_checkpoint_found_t;

//  Load the newest checkpoint of dir that reads whole. Files refused on the
//  way are renamed NAME.refused, each with a warning logged that names it
//  and why. 0 with *loaded the checkpoint (the caller's), or NULL when dir
//  holds no checkpoint file; -1 with problem when it holds some but none
//  reads whole (nothing is renamed then: the operator decides), or dir
//  cannot be listed. found (never NULL) says what was found either way.
int ps_checkpoint_load_newest (const char *dir, ps_checkpoint_t **loaded,
                               ps_checkpoint_found_t *found, ps_problem_t *problem);

//  Load the newest checkpoint of dir whose job clock is clock (a group's
//  rollback: every member holds one of the same clock). 0 with *loaded
//  the checkpoint (the caller's) and found->path and ->sequence its file;
//  0 with *loaded NULL when there is none: found->why then names the
//  clocks dir holds ("60 and 80", oldest first, at most
//  PS_CHECKPOINT_NAMED; "" when none), or, with found->refused > 0, the
//  newest file of that clock and why it does not read whole (such files
//  are renamed NAME.refused with a warning, so that the broker no longer
//  names their clock). -1 with problem when dir cannot be listed.
int ps_checkpoint_load_clock (const char *dir, int64_t clock, ps_checkpoint_t **loaded,
                              ps_checkpoint_found_t *found, ps_problem_t *problem);

//  The job clocks of the checkpoint files of dir that look whole (magic,
//  format version and size: ps_checkpoint_peek_clock; bytes rotted inside
//  are found only when the file is read whole), newest file first, each
//  clock once, at most max of them, into clocks: what a group's member
//  names in its HELLO replies. The number found; 0 when dir cannot be read.
size_t ps_checkpoint_held (const char *dir, int64_t *clocks, size_t max);

//  Rename every checkpoint file of dir numbered above sequence to
//  NAME.discarded (a future its group threw away: a later start must not
//  restore it), then fsync dir. The number renamed, or -1 with problem
//  when dir cannot be read or the renames cannot be made durable.
int ps_checkpoint_discard_after (const char *dir, uint64_t sequence, ps_problem_t *problem);

//  Delete every checkpoint file of dir but the keep newest (by number).
//  Returns the number deleted, or -1 with problem when dir cannot be read.
int ps_checkpoint_prune (const char *dir, size_t keep, ps_problem_t *problem);

#endif
