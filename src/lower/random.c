/* random.c - XLA's own random number ops: reported, not converted.
 *
 * jax.random with its default implementation (threefry2x32) needs none of
 * them: its bits come from integer adds, shifts and xors on uint32, which
 * the elementwise converters reproduce bit for bit, so a converted
 * jax.random.normal/uniform/bernoulli/categorical draws exactly JAX's
 * numbers for the same key.  The ops here are what the other
 * implementations lower to, whose bits ONNX cannot reproduce:
 *   rng_bit_generator  jax.random.key(seed, impl="rbg" / "unsafe_rbg"), or
 *                      jax_default_prng_impl set to them: XLA's Philox /
 *                      ThreeFry bit generator with its own state layout;
 *   rng                the legacy lax.rng_uniform: XLA's stateful generator.
 * ONNX's RandomUniform/RandomNormal draw other numbers, and their seeds are
 * attributes, so neither the values nor the key's role would survive.
 */
#include "lower/lower.h"

int lower_unsupported_rng_bit_generator(Lower *L, const Op *op) {
  const Attr *a = ir_op_attr(op, "rng_algorithm");
  if (!a) a = ir_op_attr(op, "algorithm");
  return lw_unsupported(L, "XLA's %s bit generator (jax.random with impl='rbg' or "
                           "'unsafe_rbg') cannot be reproduced with ONNX ops; use the default "
                           "'threefry2x32' PRNG (jax.random.key(seed) without impl=), whose "
                           "bits the conversion reproduces exactly",
                        a && a->s ? a->s : "DEFAULT");
}

int lower_unsupported_rng(Lower *L, const Op *op) {
  const Attr *a = ir_op_attr(op, "rng_distribution");
  return lw_unsupported(L, "XLA's stateful %s random numbers (lax.rng_uniform) cannot be "
                           "reproduced with ONNX ops; use jax.random with an explicit key",
                        a && a->s ? a->s : "UNIFORM");
}
