/* index_grid.h - the part of lower/ that gather.c and scatter.c share
 * (index_grid.c): ix_ names, for these three files only.
 */
#ifndef H2O_LOWER_INDEX_GRID_H
#define H2O_LOWER_INDEX_GRID_H

#include "lower/lower.h"

/* Axes of the intermediate tensors: index batch axes, windows, one more. */
#define MAX_AXES (2 * MAX_RANK + 2)

/* Axis labels: an axis of start_indices (S), or an axis of the operand
 * (D); DROP marks a size-1 axis that the result does not have. */
enum { LBL_DROP = -1 };
#define LBL_S(s) (s)
#define LBL_D(d) (MAX_RANK + 1 + (d))

/* What an operand axis is to a gather or scatter: an axis of the window
 * (offset), a collapsed size-1 window axis, or an operand batching axis. */
enum { ROLE_OFFSET, ROLE_COLLAPSED, ROLE_BATCH };

/* How the start indices are read: the S value, its index vector axis, and
 * the axes that index batch points (all but ivd, in S order). */
typedef struct Starts {
  const Value *S;
  int Rs;               /* rank of S */
  int ivd;              /* index_vector_dim; == Rs: an implicit trailing 1 */
  int n_map;            /* entries of an index vector */
  int nbs;              /* batch axes of S */
  int sax[MAX_RANK];    /* S axis of batch axis i */
  int64_t *cst;         /* S' values when known at conversion time, else NULL */
} Starts;

enum { COL_START, COL_IOTA, COL_ZERO };

typedef struct Grid {
  int n;                    /* grid axes (the index tensor has n + 1) */
  int64_t size[MAX_AXES];   /* static size, or DIM_DYN: Shape(src)[src_axis] */
  OValue *src[MAX_AXES];
  int src_axis[MAX_AXES];
  int s_of[MAX_AXES];       /* batch axis i of S' it holds, or -1 for a window axis */
  /* the start indices, S' (after clamping or redirection) */
  OValue *starts;
  int nbs, n_map;
  int64_t win[MAX_RANK];    /* per column k: window length (1: none) */
  int win_axis[MAX_RANK];   /* per column k: the grid axis of its window, or -1 */
  /* the columns of the index tensor, one per addressed data axis */
  int n_cols;
  int col_kind[MAX_RANK];
  int col_arg[MAX_RANK];    /* COL_START: k; COL_IOTA: grid axis */
} Grid;

OValue *ix_squeeze(Lower *L, OValue *x, const int64_t *axes, int n);
OValue *ix_transpose(Lower *L, OValue *x, const int64_t *perm, int rank);
/* Dimension `axis` of x as an int64 [1]: a constant when static. */
OValue *ix_dim_1d(Lower *L, OValue *x, int64_t static_size, int axis);
/* An int64 [n] from n int64 [1] pieces. */
OValue *ix_vector_of(Lower *L, OValue **parts, int n);
/* Field `name` of a dimension-numbers dict as a list (absent: empty).
 * Returns the count, or -1 after an error. */
int ix_dims_field(Lower *L, const Attr *dict, const char *name, int64_t **out);
int64_t ix_int_field(const Attr *dict, const char *name);
int ix_index_in(const int64_t *v, int n, int64_t x);
/* Every entry in [0, limit), no repeats, ascending if `sorted`. */
bool ix_good_list(const int64_t *v, int n, int64_t limit, bool sorted);
/* True when every start index is known to lie in [0, hi[k]] for its
 * column k (hi static; DIM_DYN entries make it unknowable). */
bool ix_starts_in_range(Lower *L, const Value *S, const int64_t *hi, int n_map);
void ix_starts_init(Lower *L, Starts *st, const Value *S, int ivd, int n_map);
/* S' dims: [S batch dims..., n_map]. */
int ix_sprime_dims(const Starts *st, int64_t *dims);
/* S' as an int64 graph value: the index vector last. */
OValue *ix_sprime(Lower *L, const Starts *st);
/* An integer index value of element type et as int64: uint64 values of 2^63
 * and more, negative in int64, become INT64_MAX, past every dimension as
 * they are (JAX clamps them to the end, or drops them); also for constants. */
OValue *ix_index_i64(Lower *L, OValue *v, ElemType et);
void ix_unsigned_index_consts(int64_t *v, int64_t n, ElemType et);
/* The index of each batch point with the index vector removed (for Gather
 * and GatherElements), clamped to [0, hi]; int32 indices stay int32. */
OValue *ix_single_index(Lower *L, const Starts *st, OValue *x, int64_t D_axis, int axis,
                        bool in_range);
/* The index tensor [grid..., n_cols] for GatherND / ScatterND. */
OValue *ix_build_grid(Lower *L, const Grid *g);
/* y's axes carry labels lab[0..n) (LBL_DROP: size 1, not in the result);
 * returns y with the result's axis order want[0..rr). */
OValue *ix_to_result(Lower *L, OValue *y, int n, const int *lab, int rr, const int *want);
/* The int64 [n_map] upper bounds dim - window per column: a constant when
 * every bound is static (then also in hi_static), else computed. */
OValue *ix_upper_bounds(Lower *L, OValue *x, const int64_t *D, const int64_t *K,
                        const int64_t *win, int n_map, int64_t *hi_static);
/* Clamps S' column-wise to [0, hi]. */
OValue *ix_clamp_sprime(Lower *L, const Starts *st, OValue *s, OValue *hi,
                        const int64_t *hi_static);

#endif
