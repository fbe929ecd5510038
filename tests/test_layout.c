/*  =========================================================================
    test_layout - a call's tensors in bytes (worker/ps_layout)

    ps_layout_bytes decides whether a push lends its buffers and whether a
    pull streams its copy; counts come from the caller, so a sum that
    would wrap must saturate instead of looking small.

    usage: build/test_layout [--filter 'layout/<test>'] [--verbose]
    ========================================================================= */

#include "ps_layout.h"

#include <criterion/criterion.h>
#include <stdint.h>

Test (layout, bytes_sum_every_tensor)
{
    ps_tensor_t tensors[3] = {{"a", NULL, 1}, {"b", NULL, 0}, {"c", NULL, 1000}};
    cr_expect_eq (ps_layout_bytes (tensors, 3), 1001 * sizeof (float));
    cr_expect_eq (ps_layout_bytes (tensors, 1), sizeof (float));
    cr_expect_eq (ps_layout_bytes (NULL, 0), 0);
}

Test (layout, bytes_saturate_rather_than_wrap)
{
    //  Each alone fits; together (and the second alone, times 4) they
    //  would wrap to a small number of bytes
    ps_tensor_t tensors[2] = {{"a", NULL, SIZE_MAX / sizeof (float) - 1},
                              {"b", NULL, SIZE_MAX / 2}};
    cr_expect_eq (ps_layout_bytes (tensors, 1), (SIZE_MAX / sizeof (float) - 1) * sizeof (float));
    cr_expect_eq (ps_layout_bytes (tensors, 2), SIZE_MAX);
    cr_expect_eq (ps_layout_bytes (tensors + 1, 1), SIZE_MAX);
}
