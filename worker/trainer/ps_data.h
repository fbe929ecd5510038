/*  =========================================================================
    ps_data - labelled image data sets for psworker: Fashion-MNIST from IDX
    files, a built-in synthetic set, and sharding among workers

    A data set is a plain struct: n examples of dim float32 features in
    [0,1], row-major in x (example i is x[i*dim .. i*dim+dim-1]), and one
    uint8 label per example in y, each < classes. The struct and both
    arrays are owned by the caller of the function that returned it and are
    freed with ps_dataset_destroy (). Nothing here keeps global state: any
    thread may call any function, and a data set is read-only once loaded,
    so several threads may read one at the same time.

    Failure: loaders return -1 (or NULL) and never abort on bad files; the
    ps_problem_t (common/ps_problem.h, code 0: a local failure) names the
    file and what is wrong with it. Passing NULL where a pointer other than
    the problem is required is a programmer error and asserts.
    ========================================================================= */

#ifndef PS_DATA_H_INCLUDED
#define PS_DATA_H_INCLUDED

#include "ps_problem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Limits on what an IDX file may declare, checked before allocating.
//  They belong to the file format reader rather than to the network, so
//  they live here and not in common/ps_limits.h
#define PS_DATA_MAX_EXAMPLES 10000000
#define PS_DATA_MAX_DIM 4096
//  Fashion-MNIST and the synthetic set both have ten classes
#define PS_DATA_CLASSES 10
//  Features of the synthetic set: 28x28 images, like Fashion-MNIST
#define PS_DATA_SYNTHETIC_SIDE 28
#define PS_DATA_SYNTHETIC_DIM (PS_DATA_SYNTHETIC_SIDE * PS_DATA_SYNTHETIC_SIDE)

typedef struct {
    size_t n;       //  Number of examples
    size_t dim;     //  Features per example
    size_t classes; //  Number of classes; every label is < classes
    float *x;       //  n * dim features in [0,1], example-major
    uint8_t *y;     //  n labels
} ps_dataset_t;

//  Allocate a zero-filled data set of n examples (n and dim >= 1, classes
//  in 1..256). Returns NULL if a size is out of range, n * dim overflows or
//  memory runs out.
ps_dataset_t *ps_dataset_new (size_t n, size_t dim, size_t classes);

//  Free a data set and set *self_p to NULL; does nothing if *self_p is NULL
void ps_dataset_destroy (ps_dataset_t **self_p);

//  Load Fashion-MNIST from dir: train-images-idx3-ubyte.gz and
//  train-labels-idx1-ubyte.gz when train is true, t10k-... otherwise.
//  A file without the .gz suffix is used when the .gz one is missing, and
//  is read as is if it is not gzip-compressed. Pixels are scaled to [0,1].
//  On success stores an owned data set in *out and returns 0. On failure
//  returns -1, leaves *out NULL and fills problem (when not NULL).
int ps_data_load_idx (const char *dir, bool train, ps_dataset_t **out, ps_problem_t *problem);

//  A deterministic, built-in data set of n examples (n >= 1) of
//  PS_DATA_SYNTHETIC_DIM features and PS_DATA_CLASSES classes: noisy,
//  shifted copies of ten class prototype images with a faint second class
//  mixed in. The prototypes depend only on seed, so a train set and a test
//  set made with the same seed come from one distribution, while their
//  examples differ. The same (n, seed, train) gives the same bytes on
//  every call, and the first k examples do not depend on n. Returns NULL if n is 0 or out of range
//  or memory runs out.
ps_dataset_t *ps_data_synthetic (size_t n, uint64_t seed, bool train);

//  The contiguous range [*begin, *end) of examples that worker rank of
//  world owns. Shards are disjoint and cover every example exactly once;
//  the first n % world shards hold one example more than the others, and a
//  shard is empty when world > n. Returns -1 if world is 0 or rank >= world.
int ps_data_shard (const ps_dataset_t *all, uint32_t rank, uint32_t world, size_t *begin,
                   size_t *end);

//  Hold out round(fraction * n) examples of all (fraction in [0, 1)) as a
//  validation set: the examples a Fisher-Yates draw seeded with seed
//  picks, moved, in their order, into a new set that the caller owns;
//  the rest stay in all, in their order, and all->n shrinks. The same
//  set and seed pick the same examples on every call (every rank of a
//  job gets the same split). NULL when nothing would be held out, when
//  nothing would be left, or when out of memory (all is then unchanged).
ps_dataset_t *ps_data_split (ps_dataset_t *all, double fraction, uint64_t seed);

#endif
