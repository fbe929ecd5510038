/*  =========================================================================
    test_data - ps_data: IDX loading and its failures, the synthetic set,
    sharding

    IDX files are written by the tests themselves, with zlib, into a fresh
    mkdtemp directory per test, so every failure mode can be produced on
    purpose. The real Fashion-MNIST is checked only where the Debian
    package is installed.

    usage: build/test_data [--filter 'data/<test>'] [--verbose]
    ========================================================================= */

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "ps_data.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static char s_dir[64];

static void
s_make_dir (void)
{
    snprintf (s_dir, sizeof s_dir, "%s", "/tmp/psmq-test-data-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
}

static void
s_remove_dir (void)
{
    const char *names[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                           "train-images-idx3-ubyte",    "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte.gz",  "t10k-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte",     "t10k-labels-idx1-ubyte"};
    char path[128];
    for (size_t i = 0; i < sizeof (names) / sizeof (names[0]); i++) {
        snprintf (path, sizeof (path), "%s/%s", s_dir, names[i]);
        unlink (path);
    }
    rmdir (s_dir);
}

TestSuite (data, .init = s_make_dir, .fini = s_remove_dir);

static void
s_put_be32 (unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

//  Write an IDX file: magic, ndims sizes, then len payload bytes. Gzipped
//  when the name ends in .gz.
static void
s_write_idx (const char *name, uint32_t magic, const uint32_t *dims, size_t ndims,
             const unsigned char *payload, size_t len)
{
    unsigned char header[16];
    s_put_be32 (header, magic);
    for (size_t i = 0; i < ndims; i++)
        s_put_be32 (header + 4 * (i + 1), dims[i]);
    size_t header_len = 4 * (ndims + 1);
    char path[128];
    snprintf (path, sizeof (path), "%s/%s", s_dir, name);
    if (strstr (name, ".gz")) {
        gzFile gz = gzopen (path, "wb");
        cr_assert_not_null (gz);
        cr_assert_eq (gzwrite (gz, header, (unsigned)header_len), (int)header_len);
        if (len)
            cr_assert_eq (gzwrite (gz, payload, (unsigned)len), (int)len);
        cr_assert_eq (gzclose (gz), Z_OK);
    }
    else {
        FILE *file = fopen (path, "wb");
        cr_assert_not_null (file);
        cr_assert_eq (fwrite (header, 1, header_len, file), header_len);
        if (len)
            cr_assert_eq (fwrite (payload, 1, len, file), len);
        cr_assert_eq (fclose (file), 0);
    }
}

//  Three 2x3 images, pixel i of image k = 40 * k + i, labels 7, 0, 9
static const unsigned char s_pixels[] = {0,  1,  2,  3,  4,  5,  40, 41, 42,
                                         43, 44, 45, 80, 81, 82, 83, 84, 255};
static const unsigned char s_labels[] = {7, 0, 9};

static void
s_write_small_set (const char *prefix, const char *suffix)
{
    char name[64];
    uint32_t idims[] = {3, 2, 3}, ldims[] = {3};
    snprintf (name, sizeof (name), "%s-images-idx3-ubyte%s", prefix, suffix);
    s_write_idx (name, 0x803, idims, 3, s_pixels, sizeof (s_pixels));
    snprintf (name, sizeof (name), "%s-labels-idx1-ubyte%s", prefix, suffix);
    s_write_idx (name, 0x801, ldims, 1, s_labels, sizeof (s_labels));
}

static void
s_check_small_set (const ps_dataset_t *set)
{
    cr_assert_eq (set->n, 3);
    cr_assert_eq (set->dim, 6);
    cr_assert_eq (set->classes, 10);
    for (size_t i = 0; i < sizeof (s_pixels); i++)
        cr_assert_eq (set->x[i], s_pixels[i] / 255.0f, "pixel %zu", i);
    cr_assert_eq (memcmp (set->y, s_labels, 3), 0);
}

//  Load and expect failure; returns the message
static const char *
s_load_fails (bool train)
{
    static ps_problem_t problem;
    ps_dataset_t *set = (ps_dataset_t *)1;
    problem.message[0] = 0;
    cr_assert_eq (ps_data_load_idx (s_dir, train, &set, &problem), -1);
    cr_assert_null (set);
    cr_assert_eq (problem.code, 0, "a local failure");
    cr_assert_neq (problem.message[0], 0);
    return problem.message;
}

Test (data, load_gzip_idx_files)
{
    s_write_small_set ("train", ".gz");

    ps_problem_t problem;
    ps_dataset_t *train = NULL;
    int rc = ps_data_load_idx (s_dir, true, &train, &problem);
    cr_assert_eq (rc, 0, "%s", problem.message);
    s_check_small_set (train);

    ps_dataset_destroy (&train);
    cr_assert_null (train);
    ps_dataset_destroy (&train);
}

Test (data, plain_files_accepted_for_test_set)
{
    s_write_small_set ("t10k", "");
    ps_problem_t problem;
    ps_dataset_t *test = NULL;
    cr_assert_eq (ps_data_load_idx (s_dir, false, &test, &problem), 0, "%s", problem.message);
    s_check_small_set (test);
    ps_dataset_destroy (&test);
}

#define IMAGES "train-images-idx3-ubyte.gz"
#define LABELS "train-labels-idx1-ubyte.gz"

//  Write the small training set, then name again as an IDX file of magic,
//  dims and payload (as s_write_idx writes it): loading it must fail. Its
//  message
static const char *
s_refused (const char *name, uint32_t magic, const uint32_t *dims, size_t ndims,
           const unsigned char *payload, size_t len)
{
    s_write_small_set ("train", ".gz");
    s_write_idx (name, magic, dims, ndims, payload, len);
    return s_load_fails (true);
}

Test (data, truncated_images_file)
{
    const char *err = s_refused (IMAGES, 0x803, (uint32_t[]){3, 2, 3}, 3, s_pixels, 10);
    cr_assert (strstr (err, "truncated after 10 of 18 pixel bytes"), "%s", err);
    cr_assert (strstr (err, IMAGES), "%s", err);
}

Test (data, truncated_header)
{
    //  Magic and size, but the labels' header stops after the magic
    const char *err = s_refused (LABELS, 0x801, (uint32_t[]){3}, 0, NULL, 0);
    cr_assert (strstr (err, "truncated"), "%s", err);
}

Test (data, bad_magic)
{
    const char *err =
        s_refused (IMAGES, 0x801, (uint32_t[]){3, 2, 3}, 3, s_pixels, sizeof (s_pixels));
    cr_assert (strstr (err, "magic"), "%s", err);
    cr_assert (strstr (err, "0x00000801"), "%s", err);
}

Test (data, label_out_of_range)
{
    const char *err = s_refused (LABELS, 0x801, (uint32_t[]){3}, 1, (unsigned char[]){1, 10, 2}, 3);
    cr_assert (strstr (err, "label 10 of example 1"), "%s", err);
}

Test (data, count_mismatch)
{
    const char *err = s_refused (LABELS, 0x801, (uint32_t[]){2}, 1, s_labels, 2);
    cr_assert (strstr (err, "mismatch"), "%s", err);
    cr_assert (strstr (err, "3 images"), "%s", err);
    cr_assert (strstr (err, "2 labels"), "%s", err);
}

Test (data, sizes_out_of_range)
{
    //  rows * cols overflows 32 bits: must be refused, not wrapped
    uint32_t huge[] = {3, 0x10000, 0x10000};
    cr_assert (strstr (s_refused (IMAGES, 0x803, huge, 3, s_pixels, 18), "out of range"));
    uint32_t wide[] = {3, 1, PS_DATA_MAX_DIM + 1};
    cr_assert (strstr (s_refused (IMAGES, 0x803, wide, 3, s_pixels, 18), "out of range"));
    uint32_t many[] = {PS_DATA_MAX_EXAMPLES + 1, 2, 3};
    cr_assert (strstr (s_refused (IMAGES, 0x803, many, 3, s_pixels, 18), "image count"));
    uint32_t none[] = {0, 2, 3};
    cr_assert (strstr (s_refused (IMAGES, 0x803, none, 3, NULL, 0), "image count"));
}

Test (data, trailing_bytes_refused)
{
    const unsigned char labels[] = {7, 0, 9, 1};
    cr_assert (
        strstr (s_refused (LABELS, 0x801, (uint32_t[]){3}, 1, labels, 4), "unexpected data"));
}

//  Flip one byte of the gzip file at offset (from the end if negative)
static void
s_corrupt (const char *name, long offset)
{
    char path[128];
    snprintf (path, sizeof (path), "%s/%s", s_dir, name);
    FILE *file = fopen (path, "r+b");
    cr_assert_not_null (file);
    cr_assert_eq (fseek (file, offset, offset < 0 ? SEEK_END : SEEK_SET), 0);
    int c = fgetc (file);
    cr_assert_neq (c, EOF);
    cr_assert_eq (fseek (file, -1, SEEK_CUR), 0);
    fputc (c ^ 0x5a, file);
    cr_assert_eq (fclose (file), 0);
}

Test (data, corrupted_gzip_is_an_error)
{
    //  Big enough for real deflate blocks
    enum { N = 200 };
    static unsigned char pixels[N * 6], labels[N];
    for (size_t i = 0; i < sizeof (pixels); i++)
        pixels[i] = (unsigned char)((i * 7919) >> 3);
    uint32_t idims[] = {N, 2, 3}, ldims[] = {N};
    //  Deflate data, then the CRC and the length in the trailer
    long offsets[] = {12, 20, 40, 100, 200, -12, -8, -6, -3, -1};
    for (size_t k = 0; k < sizeof (offsets) / sizeof (offsets[0]); k++) {
        s_write_idx (IMAGES, 0x803, idims, 3, pixels, sizeof (pixels));
        s_write_idx (LABELS, 0x801, ldims, 1, labels, N);
        s_corrupt (IMAGES, offsets[k]);
        const char *err = s_load_fails (true);
        cr_assert (strstr (err, IMAGES), "offset %ld: %s", offsets[k], err);
    }
}

Test (data, missing_directory_names_the_package)
{
    ps_problem_t problem;
    ps_dataset_t *set = NULL;
    cr_assert_eq (ps_data_load_idx ("/nonexistent/psmq", true, &set, &problem), -1);
    cr_assert_null (set);
    const char *err = problem.message;
    cr_assert (strstr (err, "/nonexistent/psmq/train-images-idx3-ubyte.gz"), "%s", err);
    cr_assert (strstr (err, "dataset-fashion-mnist"), "%s", err);
    cr_assert (strstr (err, "--data synthetic"), "%s", err);
}

Test (data, missing_labels_file)
{
    s_write_small_set ("train", ".gz");
    char path[128];
    snprintf (path, sizeof (path), "%s/train-labels-idx1-ubyte.gz", s_dir);
    cr_assert_eq (unlink (path), 0);
    const char *err = s_load_fails (true);
    cr_assert (strstr (err, "train-labels-idx1-ubyte"), "%s", err);
    cr_assert (strstr (err, "dataset-fashion-mnist"), "%s", err);
}

Test (data, synthetic_is_deterministic)
{
    ps_dataset_t *a = ps_data_synthetic (500, 42, true);
    ps_dataset_t *b = ps_data_synthetic (500, 42, true);
    ps_dataset_t *other_seed = ps_data_synthetic (500, 43, true);
    ps_dataset_t *test = ps_data_synthetic (500, 42, false);
    cr_assert (a && b && other_seed && test);
    cr_assert_eq (a->n, 500);
    cr_assert_eq (a->dim, 784);
    cr_assert_eq (a->classes, 10);
    size_t bytes = a->n * a->dim * sizeof (float);
    cr_assert_eq (memcmp (a->x, b->x, bytes), 0);
    cr_assert_eq (memcmp (a->y, b->y, a->n), 0);
    cr_assert_neq (memcmp (a->x, other_seed->x, bytes), 0);
    cr_assert_neq (memcmp (a->x, test->x, bytes), 0);

    size_t per_class[10] = {0};
    for (size_t i = 0; i < a->n * a->dim; i++)
        cr_assert (a->x[i] >= 0 && a->x[i] <= 1);
    for (size_t i = 0; i < a->n; i++) {
        cr_assert_lt (a->y[i], 10);
        per_class[a->y[i]]++;
    }
    for (size_t c = 0; c < 10; c++)
        cr_assert_gt (per_class[c], 20, "class %zu has %zu examples", c, per_class[c]);

    //  A shorter set is a prefix of a longer one
    ps_dataset_t *prefix = ps_data_synthetic (100, 42, true);
    cr_assert_eq (memcmp (prefix->x, a->x, 100 * a->dim * sizeof (float)), 0);
    cr_assert_eq (memcmp (prefix->y, a->y, 100), 0);
    ps_dataset_destroy (&prefix);

    cr_assert_null (ps_data_synthetic (0, 42, true));
    ps_dataset_destroy (&a);
    ps_dataset_destroy (&b);
    ps_dataset_destroy (&other_seed);
    ps_dataset_destroy (&test);
}

//  Shards of n examples among world ranks must tile [0, n) in rank order
static void
s_check_shards (size_t n, uint32_t world)
{
    ps_dataset_t *set = ps_dataset_new (n, 1, 10);
    cr_assert_not_null (set);
    size_t expect_begin = 0;
    for (uint32_t rank = 0; rank < world; rank++) {
        size_t begin, end;
        cr_assert_eq (ps_data_shard (set, rank, world, &begin, &end), 0);
        cr_assert_eq (begin, expect_begin, "n %zu world %u rank %u", n, world, rank);
        size_t size = n / world + (rank < n % world ? 1 : 0);
        cr_assert_eq (end - begin, size, "n %zu world %u rank %u", n, world, rank);
        expect_begin = end;
    }
    cr_assert_eq (expect_begin, n);
    ps_dataset_destroy (&set);
}

Test (data, shards_are_disjoint_and_cover)
{
    s_check_shards (103, 4);
    s_check_shards (100, 4);
    s_check_shards (3, 5);
    s_check_shards (1, 1);

    ps_dataset_t *set = ps_dataset_new (10, 1, 10);
    size_t begin, end;
    cr_assert_eq (ps_data_shard (set, 0, 3, &begin, &end), 0);
    cr_assert_eq (begin, 0);
    cr_assert_eq (end, 4);
    cr_assert_eq (ps_data_shard (set, 2, 3, &begin, &end), 0);
    cr_assert_eq (begin, 7);
    cr_assert_eq (end, 10);
    cr_assert_eq (ps_data_shard (set, 3, 3, &begin, &end), -1);
    cr_assert_eq (ps_data_shard (set, 0, 0, &begin, &end), -1);
    ps_dataset_destroy (&set);
}

static void
s_check_fashion (bool train, size_t n)
{
    ps_problem_t problem;
    ps_dataset_t *set = NULL;
    cr_assert_eq (ps_data_load_idx (FASHION_DIR, train, &set, &problem), 0, "%s", problem.message);
    cr_assert_eq (set->n, n);
    cr_assert_eq (set->dim, 784);
    size_t per_class[10] = {0};
    for (size_t i = 0; i < set->n; i++) {
        cr_assert_lt (set->y[i], 10);
        per_class[set->y[i]]++;
    }
    //  Fashion-MNIST is balanced
    for (size_t c = 0; c < 10; c++)
        cr_assert_eq (per_class[c], n / 10);
    float max = 0;
    for (size_t i = 0; i < set->n * set->dim; i++)
        max = set->x[i] > max ? set->x[i] : max;
    cr_assert_eq (max, 1.0f);
    ps_dataset_destroy (&set);
}

Test (data, fashion_mnist_when_installed, .timeout = 60)
{
    if (access (FASHION_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test ("%s not installed (Debian package dataset-fashion-mnist)", FASHION_DIR);
    s_check_fashion (true, 60000);
    s_check_fashion (false, 10000);
}

Test (data, split_holds_out_the_same_examples_every_time)
{
    ps_dataset_t *first = ps_data_synthetic (1000, 42, true);
    ps_dataset_t *second = ps_data_synthetic (1000, 42, true);
    ps_dataset_t *held = ps_data_split (first, 0.1, 7);
    ps_dataset_t *again = ps_data_split (second, 0.1, 7);
    cr_assert (held && again);
    cr_assert_eq (held->n, 100);
    cr_assert_eq (first->n, 900);
    cr_assert_eq (memcmp (held->x, again->x, held->n * held->dim * sizeof (float)), 0);
    cr_assert_eq (memcmp (first->y, second->y, first->n), 0);
    //  Nothing to hold out, or nothing left: no split, the set unchanged
    cr_assert_null (ps_data_split (first, 0, 7));
    cr_assert_null (ps_data_split (first, 0.9999, 7));
    cr_assert_eq (first->n, 900);
    ps_dataset_destroy (&held);
    ps_dataset_destroy (&again);
    ps_dataset_destroy (&first);
    ps_dataset_destroy (&second);
}
