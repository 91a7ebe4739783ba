/*
 * Scripted interleavings for the SMR tests built on the TEST ONLY step hooks
 * (CMake: the concurrent_collections_test_hooks library; CC__SMR_STEP in
 * <cc/smr.h>).
 *
 * A script is a sequence of numbered stages. Threads wait for a stage
 * (script_wait) and move the script on (script_go); both are a mutex and a
 * condition variable, so a schedule is forced, never hoped for. A thread can
 * also be parked at a step of the protocol: script_park_at(step, arrive,
 * release) makes the next thread that reaches `step` (of the threads that
 * called script_mark_parkable) move the script to `arrive`, then wait there
 * until the script reaches `release`.
 */
#ifndef SMR_SCRIPT_H
#define SMR_SCRIPT_H

#include <cc/smr.h>
#include "cc_test.h"

#include <pthread.h>
#include <stdbool.h>

#ifndef CC_SMR_TEST_HOOKS
#error "smr_script.h needs the step hooks: link concurrent_collections_test_hooks"
#endif

static pthread_mutex_t script_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t script_cv = PTHREAD_COND_INITIALIZER;
static int script_stage;                   /* under script_mu */
static int script_park_step = -1;          /* under script_mu */
static int script_park_arrive;             /* under script_mu */
static int script_park_release;            /* under script_mu */
static int script_parked;                  /* threads parked so far, under script_mu */
static __thread bool script_parkable;

/* Moves the script to `stage` (never backwards). */
static inline void script_go(int stage) {
    pthread_mutex_lock(&script_mu);
    if (stage > script_stage) script_stage = stage;
    pthread_cond_broadcast(&script_cv);
    pthread_mutex_unlock(&script_mu);
}

/* Waits until the script has reached `stage`. */
static inline void script_wait(int stage) {
    pthread_mutex_lock(&script_mu);
    while (script_stage < stage) pthread_cond_wait(&script_cv, &script_mu);
    pthread_mutex_unlock(&script_mu);
}

static void script_unlock(void *arg) {
    (void)arg;
    pthread_mutex_unlock(&script_mu);
}

/* script_wait at a cancellation point that a cancelled thread leaves
 * cleanly (the mutex is released by the cleanup handler). */
static inline void script_wait_cancellable(int stage) {
    pthread_mutex_lock(&script_mu);
    pthread_cleanup_push(script_unlock, NULL);
    while (script_stage < stage) pthread_cond_wait(&script_cv, &script_mu);
    pthread_cleanup_pop(1);
}

static void script_step_hook(enum cc__smr_step step) {
    if (!script_parkable) return;
    pthread_mutex_lock(&script_mu);
    if ((int)step == script_park_step) {
        int release = script_park_release;
        script_park_step = -1; /* once */
        script_parked++;
        if (script_park_arrive > script_stage) script_stage = script_park_arrive;
        pthread_cond_broadcast(&script_cv);
        while (script_stage < release) pthread_cond_wait(&script_cv, &script_mu);
    }
    pthread_mutex_unlock(&script_mu);
}

/* The calling thread may be parked by script_park_at. */
static inline void script_mark_parkable(void) { script_parkable = true; }

/* The next parkable thread to reach `step` moves the script to `arrive` and
 * stays at that step until the script reaches `release`. */
static inline void script_park_at(enum cc__smr_step step, int arrive, int release) {
    pthread_mutex_lock(&script_mu);
    script_park_step = (int)step;
    script_park_arrive = arrive;
    script_park_release = release;
    pthread_mutex_unlock(&script_mu);
}

/* How many times a thread has been parked so far. */
static inline int script_parked_count(void) {
    pthread_mutex_lock(&script_mu);
    int n = script_parked;
    pthread_mutex_unlock(&script_mu);
    return n;
}

static inline void script_install(void) {
    atomic_store_explicit(&cc__smr_step_hook, script_step_hook, memory_order_relaxed);
}

#endif
