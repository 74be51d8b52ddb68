/* test_ops.c - the op table of src/ir/ops.def is complete and consistent.
 *
 * Every row must name a shape rule (the OP macro takes six arguments, so a
 * row without the column does not compile; one with 0 or SHAPE_MISSING fails
 * here), known flags, a converter and a name the parser finds again.  Ops
 * converted by the table-driven elementwise converters must be checked as
 * elementwise.  Every attribute rename names a pretty and a generic spelling
 * that differ, at most once per op.
 * Exit status: 0 when every check passed.
 */
#include "lower/lower.h"

#include <stdio.h>
#include <string.h>

#include "test.h"

static const unsigned KNOWN_FLAGS =
    OPF_PASSES_VALUES_ALONG | OPF_CASTS_FLOAT8;

static void test_every_row_is_complete(void) {
  for (int k = 1; k < OP__COUNT; k++) {
    const OpInfo *info = &op_table[k];
    current = info->name;
    CHECK(info->name && info->name[0]);
    CHECK(info->shape > SHAPE_MISSING && info->shape < SHAPE__COUNT);
    CHECK((info->flags & ~KNOWN_FLAGS) == 0);
    CHECK(lw_converters[k] != NULL);
    CHECK(op_lookup(info->name, strlen(info->name)) == (OpKind)k);
  }
}

/* An op whose converter is one ONNX op per element reads and writes one
 * shape: the shape check must say so, or mismatched operands pass unseen. */
static void test_elementwise_converters_have_the_elementwise_rule(void) {
  for (int k = 1; k < OP__COUNT; k++) {
    current = op_table[k].name;
    if (lw_converters[k] == lower_unary || lw_converters[k] == lower_binary)
      CHECK(op_table[k].shape == SHAPE_ELEMENTWISE);
  }
}

static void test_flags_mean_what_they_say(void) {
  current = "flags";
  CHECK(op_table[OP_CALL].flags & OPF_PASSES_VALUES_ALONG);
  CHECK(op_table[OP_WHILE].flags & OPF_PASSES_VALUES_ALONG);
  CHECK(!(op_table[OP_ADD].flags & OPF_PASSES_VALUES_ALONG));
  CHECK(op_table[OP_CONVERT].flags & OPF_CASTS_FLOAT8);
}

static const struct {
  OpKind kind;
  const char *pretty, *spec;
} renames[] = {
#define ATTR_RENAME(id, pretty, spec) {OP_##id, pretty, spec},
#include "ir/ops.def"
#undef ATTR_RENAME
};

static void test_attribute_renames(void) {
  int n = (int)(sizeof renames / sizeof renames[0]);
  for (int i = 0; i < n; i++) {
    current = op_table[renames[i].kind].name;
    CHECK(strcmp(renames[i].pretty, renames[i].spec) != 0);
    for (int j = 0; j < i; j++)
      CHECK(renames[j].kind != renames[i].kind ||
            strcmp(renames[j].pretty, renames[i].pretty) != 0);
  }
}

int main(void) {
  test_every_row_is_complete();
  test_elementwise_converters_have_the_elementwise_rule();
  test_flags_mean_what_they_say();
  test_attribute_renames();
  return test_summary("test_ops");
}
