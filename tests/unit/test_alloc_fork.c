/*
 * fork() while another thread holds the glue's registry lock (a snapshot, a
 * reset or a thread's registration takes it): the child must still take
 * snapshots. The glue's pthread_atfork handlers take the lock around fork, so
 * the child never inherits it held.
 *
 * Deterministic through a TEST ONLY hook (cc__alloc_test_hold_lock, in the
 * test-hooks library): thread H takes the lock and keeps it until the parent
 * has returned from fork() or 200 ms have passed. With the handlers, fork()
 * waits for the lock (H lets it go after 200 ms) and the child's snapshot
 * works. Without them, fork() returns at once with the lock held, the child
 * inherits it held, and its snapshot hangs: the child is stopped by alarm()
 * and the test fails. Either way the schedule is forced, not hoped for.
 */
#include <cc/alloc.h>
#include "alloc_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool held, forked;

static void *holder(void *arg) {
    (void)arg;
    cc__alloc_test_hold_lock(true);
    pthread_mutex_lock(&mu);
    held = true;
    pthread_cond_broadcast(&cv);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 200000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    while (!forked && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&cv, &mu, &deadline);
    pthread_mutex_unlock(&mu);
    cc__alloc_test_hold_lock(false);
    return NULL;
}

int main(void) {
#if defined(__SANITIZE_THREAD__)
    puts("skipped: TSan does not support fork() with live threads");
    return 77;
#endif
    cc_alloc_stats_enable(true);
    void *p = cc_alloc(64); /* registers this thread with the glue */
    pthread_t h;
    if (pthread_create(&h, NULL, holder, NULL) != 0) return 2;
    pthread_mutex_lock(&mu);
    while (!held) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
        alarm(10); /* a hang detector: the inherited lock would block for ever */
        cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
        void *q = cc_alloc(64);
        cc_free(q, 64);
        cc_alloc_stats_reset();
        _exit(s.current_blocks >= 1 ? 0 : 3);
    }
    pthread_mutex_lock(&mu);
    forked = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(h, NULL);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 2;
    cc_free(p, 64);
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "the child died of signal %d (%s): it inherited the glue's lock held\n",
                WTERMSIG(status), WTERMSIG(status) == SIGALRM ? "its snapshot hung" : "crash");
        return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the child exited with %d\n", WEXITSTATUS(status));
        return 1;
    }
    puts("fork with the glue's lock held elsewhere: the child's snapshot works");
    return 0;
}
