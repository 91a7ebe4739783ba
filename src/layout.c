/*
 * Compile-time checks of the layouts the public headers share with the
 * library (defect 7).
 *
 * The inline paths of <cc/smr.h> and <cc/alloc.h> are compiled into the
 * program with ITS macros; the library reads the same memory with its own.
 * Any field offset that depended on CC_CACHE_LINE_SIZE would let a program
 * built with another value than the library's silently corrupt SMR. This
 * file is compiled with a deliberately different CC_CACHE_LINE_SIZE than the
 * rest of the library and checks that the shared layouts are still the
 * fixed ones, so reintroducing the macro into a shared struct breaks the
 * build instead of programs.
 */
#define CC_CACHE_LINE_SIZE 16 /* not the default of any target */
#include <cc/smr.h>

#include <stddef.h>

#if CC__LAYOUT_LINE == CC_CACHE_LINE_SIZE
#error "layout.c must be compiled with a CC_CACHE_LINE_SIZE unlike CC__LAYOUT_LINE"
#endif

/* The record: a line other threads read (announce, lock, next), then the
 * owner's line (depth onwards). */
_Static_assert(_Alignof(cc__smr_rec_t) == CC__LAYOUT_LINE, "record alignment depends on a macro");
_Static_assert(offsetof(cc__smr_rec_t, announce) == 0, "announce moved");
_Static_assert(offsetof(cc__smr_rec_t, depth) == CC__LAYOUT_LINE, "depth must start the second line");
_Static_assert(sizeof(cc__smr_rec_t) == 2 * CC__LAYOUT_LINE, "record size depends on a macro");
_Static_assert(offsetof(cc__smr_rec_t, retired) + sizeof(uint64_t) <= 2 * CC__LAYOUT_LINE,
               "the owner's fields must fit its line");

/* Structures without padding to a line: their layout involves no macro. */
_Static_assert(offsetof(cc__smr_chunk_t, e) + CC__SMR_CHUNK_CAP * sizeof(cc__smr_entry_t) ==
                   sizeof(cc__smr_chunk_t),
               "chunk layout changed");
_Static_assert(_Alignof(cc__alloc_tls_t) == _Alignof(void *), "alloc TLS must not be over-aligned");
_Static_assert(_Alignof(cc__alloc_classes_t) == _Alignof(uint64_t), "class block must not be over-aligned");

/* ISO C wants a translation unit to declare something. */
typedef int cc__layout_checked;
