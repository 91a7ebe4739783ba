/*
 * Shared helpers for the C tests.
 *
 * cmocka's assert_* must only be used on the thread running the test: they
 * longjmp back into it. Worker threads use CC_CHECK, which reports and aborts
 * (so CTest sees the test fail).
 */
#ifndef CC_TEST_H
#define CC_TEST_H

#include <stdio.h>
#include <stdlib.h>

#define CC_CHECK(cond)                                                                   \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: check failed in a worker thread: %s\n", __FILE__,    \
                    __LINE__, #cond);                                                    \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif
