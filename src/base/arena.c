/* arena.c - the bump allocator every conversion allocates from.
 *
 * Memory comes in chunks of at least 1 MiB, or exactly the request when it is
 * larger, and all of it is released by arena_free.  Running out of memory is
 * not an error path the callers handle: arena_alloc longjmps to the handler
 * that pipeline.c set up, which reports H2O_ENOMEM.  That keeps every caller
 * free of NULL checks, and the host process alive.
 */
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

/* The allocation failure tests (test_alloc_fail.c) want a conversion to
 * take many chunks, so that a failing one hits every stage, not only the
 * first: builds with the failure injection use small chunks. */
#ifdef H2O_FAIL_ALLOC
#define ARENA_CHUNK (1u << 12)
#else
#define ARENA_CHUNK (1u << 20)
#endif
#define ARENA_ALIGN 16u

/* Under AddressSanitizer every allocation is followed by a poisoned red zone
 * and the free part of a chunk stays poisoned, so an overrun from one arena
 * object into the next is reported as it is with malloc (the fuzzers and the
 * sanitizer builds rely on this).  Elsewhere the macros do nothing. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define H2O_ARENA_ASAN 1
#endif
#endif
#if !defined(H2O_ARENA_ASAN) && defined(__SANITIZE_ADDRESS__)
#define H2O_ARENA_ASAN 1
#endif
#ifdef H2O_ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define ARENA_REDZONE ARENA_ALIGN
#define ARENA_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ARENA_REDZONE 0u
#define ARENA_POISON(p, n) ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

typedef struct Chunk {
  struct Chunk *next;
  size_t size, used;
  _Alignas(16) unsigned char mem[];
} Chunk;

struct Arena {
  Chunk *head;
  jmp_buf *oom;
  size_t total;
};

Arena *arena_new(jmp_buf *oom) {
  Arena *a = h2o_calloc(1, sizeof *a);
  if (a) a->oom = oom;
  return a;
}

void arena_free(Arena *a) {
  if (!a) return;
  for (Chunk *ch = a->head, *next; ch; ch = next) {
    next = ch->next;
    ARENA_UNPOISON(ch->mem, ch->size);
    h2o_free(ch);
  }
  h2o_free(a);
}

static void arena_out_of_memory(Arena *a) {
  if (a->oom) longjmp(*a->oom, 1);
  abort(); /* no handler: only reachable from misuse in tests */
}

void *arena_alloc(Arena *a, size_t size) {
  size_t need = ((size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1)) + ARENA_REDZONE;
  if (need < size) arena_out_of_memory(a);
  Chunk *ch = a->head;
  if (!ch || ch->size - ch->used < need) {
    size_t cap = need > ARENA_CHUNK ? need : ARENA_CHUNK;
    if (cap > SIZE_MAX - sizeof(Chunk)) arena_out_of_memory(a);
    Chunk *fresh = h2o_malloc(sizeof(Chunk) + cap);
    if (!fresh) arena_out_of_memory(a);
    fresh->size = cap;
    fresh->used = 0;
    ARENA_POISON(fresh->mem, cap);
    if (ch && need > ARENA_CHUNK) {
      /* A big block gets a chunk of its own behind the current one, so the
       * free space left in the current chunk is not wasted. */
      fresh->next = ch->next;
      ch->next = fresh;
    } else {
      fresh->next = ch;
      a->head = fresh;
    }
    ch = fresh;
    a->total += cap;
  }
  void *p = ch->mem + ch->used;
  ch->used += need;
  ARENA_UNPOISON(p, size);
  memset(p, 0, size);
  return p;
}

void *arena_realloc(Arena *a, void *old, size_t old_size, size_t new_size) {
  if (new_size <= old_size) return old;
  void *p = arena_alloc(a, new_size);
  if (old && old_size) memcpy(p, old, old_size);
  return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  if (n) memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *arena_strdup(Arena *a, const char *s) {
  return arena_strndup(a, s, strlen(s));
}

char *arena_printf(Arena *a, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  char *p = arena_alloc(a, (size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return p;
}

size_t arena_bytes_used(const Arena *a) { return a->total; }

void ptrvec_push(Arena *a, PtrVec *v, void *item) {
  if (v->len == v->cap) {
    int cap = v->cap ? v->cap * 2 : 8;
    v->items = arena_realloc(a, v->items, sizeof(void *) * (size_t)v->cap,
                             sizeof(void *) * (size_t)cap);
    v->cap = cap;
  }
  v->items[v->len++] = item;
}
