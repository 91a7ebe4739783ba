/*
 * errno survives the library's internal probes (defect: where membarrier(2)
 * is refused -- seccomp, gVisor, old kernels -- the first SMR use left
 * errno = EPERM, and an empty cc_stack_pop / cc_queue_pop then reported errno
 * changed).
 *
 * A child process installs a seccomp filter that makes membarrier(2) fail
 * with EPERM before its first SMR use, then checks that every call whose
 * contract leaves errno alone does so, and that SMR fell back to the fencing
 * mode. The parent only waits for it. If seccomp is not available the test
 * says so and skips (exit code 77 to CTest).
 */
#include <cc/queue.h>
#include <cc/stack.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define SENTINEL 4242

static int deny_membarrier(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW), /* another ABI: leave it alone */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static int failures;
#define EXPECT_ERRNO_KEPT(what)                                                                   \
    do {                                                                                          \
        if (errno != SENTINEL) {                                                                  \
            fprintf(stderr, "%s changed errno to %d (%s)\n", what, errno, strerror(errno));       \
            failures++;                                                                           \
        }                                                                                         \
        errno = SENTINEL;                                                                         \
    } while (0)

static int child(void) {
    if (deny_membarrier() != 0) {
        fprintf(stderr, "seccomp unavailable (%s): skipped\n", strerror(errno));
        return 77;
    }
    if (syscall(__NR_membarrier, 0, 0, 0) != -1 || errno != EPERM) {
        fprintf(stderr, "the filter did not take: skipped\n");
        return 77;
    }
    errno = SENTINEL;
    cc_smr_enter(); /* the first SMR use: registration probes membarrier */
    cc_smr_exit();
    EXPECT_ERRNO_KEPT("the first cc_smr_enter/exit");
    cc_stack_t *s = cc_stack_new();
    cc_queue_t *q = cc_queue_new();
    if (!s || !q) return 2;
    errno = SENTINEL;
    void *v;
    if (cc_stack_pop(s, &v) || cc_queue_pop(q, &v)) failures++;
    EXPECT_ERRNO_KEPT("an empty pop");
    if (!cc_stack_push(s, &v) || !cc_queue_push(q, &v)) failures++;
    EXPECT_ERRNO_KEPT("a push");
    if (!cc_stack_pop(s, &v) || !cc_queue_pop(q, &v)) failures++;
    EXPECT_ERRNO_KEPT("a pop");
    cc_smr_retire(cc_alloc_node(40), 40, NULL);
    (void)cc_smr_poll();
    EXPECT_ERRNO_KEPT("retire and poll");
    if (cc_smr_barrier() != 0) failures++;
    EXPECT_ERRNO_KEPT("a barrier");
    if (cc_smr_stats().asymmetric != 0) {
        fprintf(stderr, "SMR chose the asymmetric mode although membarrier(2) is refused\n");
        failures++;
    }
    cc_stack_destroy(s);
    cc_queue_destroy(q);
    return failures ? 1 : 0;
}

int main(void) {
    pid_t pid = fork(); /* before any SMR use in this process */
    if (pid < 0) return 2;
    if (pid == 0) _exit(child());
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 2;
    return WEXITSTATUS(status);
}
