/*
 * Child-process tests: environment parsing (bad values give one clear line and
 * the default) and the debug backend's aborts on misuse, with their messages.
 * Each child runs cc_probe under a timeout; a hang fails the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int status; /* waitpid status */
    char out[4096], err[8192];
} child_t;

static void drain(int fd, char *buf, size_t cap, size_t *len) {
    ssize_t n = read(fd, buf + *len, cap - 1 - *len);
    if (n > 0) *len += (size_t)n;
    buf[*len] = '\0';
}

/* Runs cc_probe with `args`, with the CONCURRENT_COLLECTIONS_* variables
 * cleared and then set from `env` ("VAR=VALUE" strings, NULL-terminated). */
static child_t run_probe(const char *const *env, const char *arg1, const char *arg2) {
    child_t c;
    memset(&c, 0, sizeof c);
    int po[2], pe[2];
    assert_int_equal(pipe(po), 0);
    assert_int_equal(pipe(pe), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        unsetenv("CONCURRENT_COLLECTIONS_ALLOCATOR");
        unsetenv("CONCURRENT_COLLECTIONS_ENABLE_STATS");
        unsetenv("CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD");
        for (; env && *env; env++) putenv((char *)*env);
        execl(CC_PROBE_PATH, "cc_probe", arg1, arg2, (char *)NULL);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    size_t lo = 0, le = 0;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    time_t deadline = time(NULL) + 30;
    int open_fds = 2;
    while (open_fds > 0) {
        if (time(NULL) > deadline) {
            kill(pid, SIGKILL);
            fail_msg("cc_probe %s hung", arg1);
        }
        if (poll(fds, 2, 1000) <= 0) continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            size_t before = i == 0 ? lo : le;
            if (i == 0) drain(fds[i].fd, c.out, sizeof c.out, &lo);
            else drain(fds[i].fd, c.err, sizeof c.err, &le);
            if ((i == 0 ? lo : le) == before) { /* EOF */
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    assert_int_equal(waitpid(pid, &c.status, 0), pid);
    return c;
}

static void assert_clean_exit(const child_t *c) {
    if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0)
        fail_msg("child did not exit 0 (status 0x%x); stderr: %s", c->status, c->err);
}

static void assert_aborted_with(const child_t *c, const char *text) {
    if (!WIFSIGNALED(c->status) || WTERMSIG(c->status) != SIGABRT)
        fail_msg("child was not aborted (status 0x%x); stderr: %s", c->status, c->err);
    if (strstr(c->err, text) == NULL) fail_msg("stderr lacks '%s': %s", text, c->err);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_env_defaults(void **state) {
    (void)state;
    child_t c = run_probe(NULL, "env", NULL);
    assert_clean_exit(&c);
    assert_string_equal(c.out, "backend=mimalloc stats=0 threshold=64\n");
    assert_string_equal(c.err, "");
}

static void test_env_good_values(void **state) {
    (void)state;
    const char *env[] = {"CONCURRENT_COLLECTIONS_ALLOCATOR=system",
                         "CONCURRENT_COLLECTIONS_ENABLE_STATS=1",
                         "CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD=500", NULL};
    child_t c = run_probe(env, "env", NULL);
    assert_clean_exit(&c);
    assert_string_equal(c.out, "backend=system stats=1 threshold=500\n");
    assert_string_equal(c.err, "");
}

static void test_env_bad_values(void **state) {
    (void)state;
    static const struct {
        const char *setting, *name, *value, *accepted;
    } cases[] = {
        {"CONCURRENT_COLLECTIONS_ALLOCATOR=jemalloc", "CONCURRENT_COLLECTIONS_ALLOCATOR",
         "'jemalloc'", "'mimalloc', 'system' or 'debug'"},
        {"CONCURRENT_COLLECTIONS_ALLOCATOR=", "CONCURRENT_COLLECTIONS_ALLOCATOR", "''", "'debug'"},
        {"CONCURRENT_COLLECTIONS_ENABLE_STATS=yes", "CONCURRENT_COLLECTIONS_ENABLE_STATS", "'yes'",
         "'0' or '1'"},
        {"CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD=-5", "CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD",
         "'-5'", "integer from 1 to"},
        {"CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD=0", "CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD",
         "'0'", "integer from 1 to"},
        {"CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD=12abc", "CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD",
         "'12abc'", "integer from 1 to"},
        {"CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD=99999999999999999999999",
         "CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD", "'99999999999999999999999'", "integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *env[] = {cases[i].setting, NULL};
        child_t c = run_probe(env, "env", NULL);
        assert_clean_exit(&c);
        /* the default is kept */
        assert_string_equal(c.out, "backend=mimalloc stats=0 threshold=64\n");
        /* one line naming the variable, the value and what is accepted */
        assert_int_equal(count_lines(c.err), 1);
        if (!strstr(c.err, cases[i].name) || !strstr(c.err, cases[i].value) ||
            !strstr(c.err, cases[i].accepted))
            fail_msg("unclear message for %s: %s", cases[i].setting, c.err);
    }
}

static void test_set_backend_before_first_allocation(void **state) {
    (void)state;
    const char *names[] = {"system", "debug", "mimalloc"};
    for (int i = 0; i < 3; i++) {
        child_t c = run_probe(NULL, "set-backend", names[i]);
        assert_clean_exit(&c);
        char want[128];
        snprintf(want, sizeof want, "backend=%s again=-1 errno_ebusy=1\n", names[i]);
        assert_string_equal(c.out, want);
    }
}

static const char *debug_env[] = {"CONCURRENT_COLLECTIONS_ALLOCATOR=debug", NULL};

static void test_debug_double_free(void **state) {
    (void)state;
    child_t c = run_probe(debug_env, "double-free", NULL);
    assert_aborted_with(&c, "double free of 0x");
    assert_aborted_with(&c, "24 bytes");
    c = run_probe(debug_env, "double-free-unsized", NULL);
    assert_aborted_with(&c, "double free of 0x");
}

static void test_debug_foreign_pointer(void **state) {
    (void)state;
    child_t c = run_probe(debug_env, "foreign", NULL);
    assert_aborted_with(&c, "never returned");
    /* the message names the pointer the probe printed */
    char ptr[64];
    snprintf(ptr, sizeof ptr, "%.*s", (int)strcspn(c.out, "\n"), c.out);
    assert_true(strlen(ptr) > 2);
    if (!strstr(c.err, ptr)) fail_msg("message does not name %s: %s", ptr, c.err);
}

static void test_debug_size_mismatch(void **state) {
    (void)state;
    child_t c = run_probe(debug_env, "size-mismatch", NULL);
    assert_aborted_with(&c, "size mismatch");
    assert_aborted_with(&c, "given 24 bytes");
    assert_aborted_with(&c, "allocated with 16");
}


static void test_debug_reports_leaks_and_fills(void **state) {
    (void)state;
    child_t c = run_probe(debug_env, "leak", NULL);
    assert_clean_exit(&c);
    if (!strstr(c.err, "1 block(s), 40 bytes, still live at exit"))
        fail_msg("no leak report: %s", c.err);
    c = run_probe(debug_env, "fill", NULL);
    assert_clean_exit(&c);
    assert_string_equal(c.out, "fill_new=1\n");
    /* mimalloc backend: the same misuse is not checked, and no report */
    c = run_probe(NULL, "leak", NULL);
    assert_clean_exit(&c);
    assert_string_equal(c.err, "");
}

static void test_env_fail_alloc(void **state) {
    (void)state;
    const char *nth[] = {"CONCURRENT_COLLECTIONS_ALLOCATOR=debug",
                         "CONCURRENT_COLLECTIONS_FAIL_ALLOC=4", NULL};
    child_t c = run_probe(nth, "fail-alloc", NULL);
    assert_clean_exit(&c);
    assert_string_equal(c.out, "...x..\n");
    const char *every[] = {"CONCURRENT_COLLECTIONS_ALLOCATOR=debug",
                           "CONCURRENT_COLLECTIONS_FAIL_ALLOC=every:2", NULL};
    c = run_probe(every, "fail-alloc", NULL);
    assert_clean_exit(&c);
    assert_string_equal(c.out, ".x.x.x\n");
    const char *bad[] = {"CONCURRENT_COLLECTIONS_ALLOCATOR=debug",
                         "CONCURRENT_COLLECTIONS_FAIL_ALLOC=sometimes", NULL};
    c = run_probe(bad, "fail-alloc", NULL);
    assert_clean_exit(&c);
    assert_string_equal(c.out, "......\n");
    assert_int_equal(count_lines(c.err), 1);
    assert_non_null(strstr(c.err, "CONCURRENT_COLLECTIONS_FAIL_ALLOC"));
    assert_non_null(strstr(c.err, "'sometimes'"));
}

#if defined(__SANITIZE_ADDRESS__)
#define BUILT_WITH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BUILT_WITH_ASAN 1
#endif
#endif

static void test_debug_overrun(void **state) {
    (void)state;
    child_t c = run_probe(debug_env, "overrun", NULL);
#ifdef BUILT_WITH_ASAN
    /* a live block's guard is poisoned: ASan stops the write where it happens */
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0)
        fail_msg("ASan did not stop a write past a block: %s", c.out);
    if (!strstr(c.err, "use-after-poison")) fail_msg("no ASan report: %s", c.err);
#else
    assert_aborted_with(&c, "buffer overrun");
#endif
}

static void test_debug_use_after_free(void **state) {
    (void)state;
    child_t c = run_probe(debug_env, "use-after-free", NULL);
#ifdef BUILT_WITH_ASAN
    /* the quarantined block is poisoned: ASan stops the read */
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0)
        fail_msg("ASan did not stop a read of a freed block: %s", c.out);
    if (!strstr(c.err, "use-after-poison") && !strstr(c.err, "use-after-free"))
        fail_msg("no ASan report: %s", c.err);
#else
    /* without ASan, the freed block reads as the free pattern */
    assert_clean_exit(&c);
    assert_string_equal(c.out, "after_free=0xDD\n");
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_defaults),
        cmocka_unit_test(test_env_good_values),
        cmocka_unit_test(test_env_bad_values),
        cmocka_unit_test(test_set_backend_before_first_allocation),
        cmocka_unit_test(test_debug_double_free),
        cmocka_unit_test(test_debug_foreign_pointer),
        cmocka_unit_test(test_debug_size_mismatch),
        cmocka_unit_test(test_debug_overrun),
        cmocka_unit_test(test_debug_reports_leaks_and_fills),
        cmocka_unit_test(test_env_fail_alloc),
        cmocka_unit_test(test_debug_use_after_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
