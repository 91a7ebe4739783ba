/*
 * Defect 6: dlclose, then a thread that used the library exits.
 *
 * SMR (src/smr_registry.c) and the allocation statistics (src/alloc.c) register a
 * pthread key destructor for every thread that uses them. If dlclose unmapped
 * the library, those destructors would point into unmapped memory and the
 * thread's exit would crash (SIGSEGV). The shared library is linked with
 * -z nodelete (CMakeLists.txt), so dlclose leaves it mapped.
 *
 * The scenario runs in a forked child so that a crash is reported as a
 * failed test with the signal's name instead of killing the test runner.
 * The program does not link the library: it dlopens the path given as
 * argv[1] ($<TARGET_FILE:concurrent_collections>) and reaches it only through
 * dlsym'd out-of-line functions, the way a plugin host would.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef size_t (*poll_fn)(void);
typedef int (*barrier_fn)(void);
typedef void (*stats_enable_fn)(bool);
typedef void *(*alloc_aligned_fn)(size_t, size_t);
typedef void (*retire_slow_fn)(void *, size_t, void (*)(void *, size_t));

static poll_fn p_poll;
static barrier_fn p_barrier;
static stats_enable_fn p_stats_enable;
static alloc_aligned_fn p_alloc_aligned;
static retire_slow_fn p_retire;

/* main -> worker hand-shake (the test's own mutex, not the library's). */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase; /* 1: worker registered; 2: library closed, worker may exit */

static void die(const char *what) {
    fprintf(stderr, "test_dlclose child: %s\n", what);
    _exit(2);
}

static void *sym(void *h, const char *name) {
    void *p = dlsym(h, name);
    if (p == NULL) {
        fprintf(stderr, "test_dlclose child: dlsym(%s): %s\n", name, dlerror());
        _exit(2);
    }
    return p;
}

static void *worker(void *arg) {
    (void)arg;
    /* Registers this thread's SMR record (poll enters a section) and its
     * allocation counters (statistics are on, so the allocation counts in
     * per-thread state): both set a pthread key with a destructor. */
    p_poll();
    for (int i = 0; i < 100; i++) {
        void *n = p_alloc_aligned(64, 64);
        if (n == NULL) die("cc_alloc_aligned failed");
        p_retire(n, 64, NULL); /* freed later by the library (cc_free) */
    }
    p_poll();
    pthread_mutex_lock(&mu);
    phase = 1;
    pthread_cond_broadcast(&cv);
    while (phase != 2) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL; /* the key destructors run now, after dlclose */
}

static int child(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "test_dlclose child: dlopen(%s): %s\n", path, dlerror());
        return 2;
    }
    p_poll = (poll_fn)sym(h, "cc_smr_poll");
    p_barrier = (barrier_fn)sym(h, "cc_smr_barrier");
    p_stats_enable = (stats_enable_fn)sym(h, "cc_alloc_stats_enable");
    p_alloc_aligned = (alloc_aligned_fn)sym(h, "cc_alloc_aligned");
    p_retire = (retire_slow_fn)sym(h, "cc__smr_retire_slow");
    p_stats_enable(true);

    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) return 2;
    pthread_mutex_lock(&mu);
    while (phase != 1) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    /* The main thread uses SMR too, so its own exit (after dlclose) runs the
     * destructor as well. */
    if (p_barrier() != 0) die("cc_smr_barrier failed");

    if (dlclose(h) != 0) {
        fprintf(stderr, "test_dlclose child: dlclose: %s\n", dlerror());
        return 2;
    }
    pthread_mutex_lock(&mu);
    phase = 2;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL); /* the worker's destructors ran */
    /* pthread_exit, not return: the main thread's destructors run too
     * (exit() would skip them). The process then exits with status 0. */
    pthread_exit(NULL);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s path/to/libconcurrent_collections.so\n", argv[0]);
        return 2;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) _exit(child(argv[1]));
    int st;
    while (waitpid(pid, &st, 0) < 0) {
    }
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "FAIL: the child died of signal %d (%s) after dlclose\n", WTERMSIG(st),
                strsignal(WTERMSIG(st)));
        return 1;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "FAIL: the child exited with status %d\n", WEXITSTATUS(st));
        return 1;
    }
    printf("ok: threads that used SMR and statistics exited after dlclose\n");
    return 0;
}
