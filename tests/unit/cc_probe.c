/*
 * A tiny program that test_child.c runs in a child process with a chosen
 * environment: it reports the configuration it sees, or misuses the debug
 * allocator on purpose so the test can check the abort and its message.
 */
#include <cc/alloc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "env";
    if (strcmp(mode, "env") == 0) {
        void *p = cc_alloc(8);
        printf("backend=%s stats=%d threshold=%zu\n", cc_alloc_backend(), cc_alloc_stats_enabled(),
               cc_config_retire_threshold());
        cc_free(p, 8);
        return 0;
    }
    if (strcmp(mode, "set-backend") == 0 && argc > 2) {
        if (cc_alloc_set_backend(argv[2]) != 0) { perror("cc_alloc_set_backend"); return 3; }
        void *p = cc_alloc(8);
        if (p == NULL) return 4;
        cc_free(p, 8);
        errno = 0;
        int again = cc_alloc_set_backend(argv[2]);
        printf("backend=%s again=%d errno_ebusy=%d\n", cc_alloc_backend(), again, errno == EBUSY);
        return 0;
    }
    if (strcmp(mode, "double-free") == 0) {
        void *p = cc_alloc(24);
        cc_free(p, 24);
        cc_free(p, 24);
        return 0;
    }
    if (strcmp(mode, "double-free-unsized") == 0) {
        void *p = cc_alloc_node(40);
        cc_free_unsized(p);
        cc_free_unsized(p);
        return 0;
    }
    if (strcmp(mode, "foreign") == 0) {
        void *p = cc_alloc(8); /* the backend is chosen by now */
        void *q = malloc(32);
        printf("%p\n", q);
        fflush(stdout);
        cc_free(q, 32);
        cc_free(p, 8);
        return 0;
    }
    if (strcmp(mode, "size-mismatch") == 0) {
        void *p = cc_alloc(16);
        cc_free(p, 24);
        return 0;
    }
    if (strcmp(mode, "overrun") == 0) {
        char *p = cc_alloc(16);
        p[16] = 1;
        cc_free(p, 16);
        return 0;
    }
    if (strcmp(mode, "leak") == 0) {
        void *p = cc_alloc(40);
        (void)p;
        return 0;
    }
    if (strcmp(mode, "fail-alloc") == 0) { /* prints which of 6 allocations failed */
        for (int i = 1; i <= 6; i++) {
            errno = 0;
            void *p = cc_alloc(8);
            printf("%c", p ? '.' : (errno == ENOMEM ? 'x' : '?'));
            cc_free(p, 8);
        }
        printf("\n");
        return 0;
    }
    if (strcmp(mode, "use-after-free") == 0) {
        volatile unsigned char *p = cc_alloc(16);
        cc_free((void *)p, 16);
        printf("after_free=0x%02X\n", p[3]); /* ASan builds must stop here */
        return 0;
    }
    if (strcmp(mode, "fill") == 0) {
        unsigned char *p = cc_alloc(32);
        int ok = p[0] == 0xCD && p[31] == 0xCD;
        cc_free(p, 32);
        printf("fill_new=%d\n", ok);
        return 0;
    }
    fprintf(stderr, "cc_probe: unknown mode '%s'\n", mode);
    return 2;
}
