/*  =========================================================================
    case_many - a model of many tensors against one of the same bytes

    many_resnet50 (ms per push+pull step of ResNet-50's 161 parameter
    tensors, 25.6 M floats, all in one push and one pull call; --quick:
    the same shapes with every tensor 16 times smaller) and many_one (the
    same bytes as one tensor), one worker, ASP, rounds taking turns,
    medians; many_resnet50.vs_one is the ratio of the two (issue 15 asks
    at most 1.2): what a model's structure costs over its bytes.
    ========================================================================= */

#ifndef CASE_MANY_H_INCLUDED
#define CASE_MANY_H_INCLUDED

#include "bench_case.h"

//  The many figures; 0, or 1 when a run failed
bench_case_fn case_many;

//  ResNet-50's parameter tensors (torchvision's named_parameters order):
//  the element count of each into counts (room for at most max); how
//  many there are
size_t case_many_resnet50 (size_t *counts, size_t max);

#endif
