/* complex.h - what lower/complex.c and lower/fft.c share: complex tensors
 * as real pairs (see complex.c), cx_ names, for these two files only.
 */
#ifndef H2O_LOWER_COMPLEX_H
#define H2O_LOWER_COMPLEX_H

#include "lower/lower.h"

/* A complex tensor as its parts: two real tensors of its shape. */
typedef struct Cx {
  OValue *re, *im;
} Cx;

/* `shape`'s dims with element type et (any element type of `shape`). */
OValue *cx_typed(Lower *L, OValue *v, ElemType et, const Type *shape);
/* The parts of `pairs`, a tensor of real pairs of the complex type `t`
 * (constants are split at conversion time). */
Cx cx_split(Lower *L, OValue *pairs, const Type *t);
/* The real pairs of z, whose parts have the shape of the complex type t. */
OValue *cx_join(Lower *L, Cx z, const Type *t);
/* A real tensor of zeros of x's shape and type (HLO type `shape`). */
OValue *cx_zeros_like(Lower *L, OValue *x, const Type *shape);

#endif
