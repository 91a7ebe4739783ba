/*
 * SMR torture test, in the spirit of rcutorture: many threads (more than the
 * machine has cores) read, unlink, retire, poll, barrier, go idle and exit at
 * random for a bounded time, while the TEST ONLY step hooks (CC__SMR_STEP in
 * <cc/smr.h>, the concurrent_collections_test_hooks library) inject random
 * delays and yields at every named point of the protocol. Where the scripted
 * tests (test_smr_revoke_race) force ONE known interleaving, this one makes
 * rare windows wide and lets the scheduler find the rest.
 *
 * The shared structure is an array of slots, each holding a pointer to a node.
 * Roles (each thread has its own xorshift PRNG, also used by the hook):
 *  - readers enter a section, walk some slots, check every node they reach
 *    (magic word, payload derived from its serial), hold on to them for a
 *    random while -- sometimes a sleep, inside the section -- and check them
 *    all again: same magic, same serial (a node freed and reused at the same
 *    address gets a new serial). 1 in 8 sections is a long hold (hold()):
 *    it unlinks and retires one of its own nodes, then polls and yields
 *    until the epoch has moved well past the section's or a timeout. At the
 *    end of every section a reader also checks (I1) of src/smr_epoch.c (the epoch
 *    is at most one past the one it saw after its enter); a violation means
 *    its protection is gone, and it holds on until that shows as a node
 *    freed under it (the use after free is what is reported);
 *  - updaters swap a fresh node into a slot and retire the old one with
 *    node_free(), which checks the magic and POISONS the node before
 *    cc_free: a reader that sees poison, a wrong magic or a changed serial
 *    holds a node that was freed under it. It prints what it saw and aborts;
 *  - sleepers use SMR, then sleep outside any section WITHOUT cc_smr_idle(),
 *    so in asymmetric mode their kept announcements hold the epoch back until
 *    a reclaimer revokes them (membarrier): revocation happens all the time;
 *  - a reclaimer calls cc_smr_poll(), cc_smr_barrier() and runs revocation
 *    passes (cc__smr_revoke_idle_now, what a blocked full scan does);
 *  - every worker exits after a random number of operations and the main
 *    thread starts a replacement: records are reused, orphans handed over.
 * At the end: every thread joined, a barrier, then exact checks: every retired
 * node freed exactly once (node_free aborts on a second free of a node that
 * was not reused; the counts must match), cc_smr_stats retired == freed, the
 * glue's current_allocated back to its baseline.
 *
 * CC_TORTURE_SECONDS bounds the run (default 5). A detection aborts at once
 * and prints the time since the start, so a negative-control run stops as
 * soon as it has found the bug: built with -DCC_SMR_BROKEN_REVOKE_EPOCH=ON
 * (revocation drops announcements of the current epoch, defect 1) this test
 * must fail; tests/smr/CMakeLists.txt registers test_smr_torture.negative.*
 * with a long bound in such builds (scripts/test.sh, negative controls).
 * CC_TORTURE_SEED fixes the threads' random streams (not the schedule).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "smr_test.h"
#include "smr_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TORTURE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TORTURE_ASAN 1
#endif
#endif
#ifdef TORTURE_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#ifndef CC_SMR_TEST_HOOKS
#error "test_smr_torture needs the step hooks: link concurrent_collections_test_hooks"
#endif

/* ---- nodes ---------------------------------------------------------------- */

#define NSLOTS 16
#define MAGIC 0x70A7C0DE5AFE0001ull
#define POISON 0xDEADDEADDEADDEADull
#define PAYLOAD_KEY 0x9E3779B97F4A7C15ull
#define EPOCH_HOLD 5                 /* see read_section */
#define HOLD_MAX_NS (2u * 1000000u)
#define CONFIRM_MAX_NS (50u * 1000000u)
#define FENCED_WAIT_MAX_NS (5u * 1000000u) /* see torture_hook */

typedef struct {
    /* Atomics (relaxed): a reader re-reads them after a delay and the
     * compiler must not reuse the first load. */
    _Atomic uint64_t magic;
    _Atomic uint64_t serial;
    /* Plain: written at creation and by node_free, read by readers, so under
     * TSan it checks that SMR orders every read before the free. */
    uint64_t payload;
    uint64_t pad[5];
} node_t;

static _Atomic(node_t *) g_slots[NSLOTS];
static _Atomic uint64_t g_serial;
static _Atomic uint64_t g_retired; /* nodes this test retired */
static _Atomic uint64_t g_freed;   /* node_free calls */
static _Atomic uint64_t g_sections, g_revokes, g_barriers, g_polls, g_spawns;
/* How often the rare windows opened (printed at the end): revocation passes
 * past their membarrier, those during which the epoch moved, revocation CASes
 * attempted, and reader sections held until the epoch moved or a timeout. */
static _Atomic uint64_t g_fenced, g_fenced_moved, g_cas_steps, g_holds;
static _Atomic bool g_stop;
static uint64_t g_t0_ns;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double elapsed_s(void) { return (double)(now_ns() - g_t0_ns) / 1e9; }

/* A detection: say what, when, and abort (CTest sees the failure at once). */
static void detected(const char *what, const node_t *n, uint64_t seen, uint64_t expected) {
    fprintf(stderr,
            "test_smr_torture: DETECTED after %.3f s: %s: node %p read 0x%016" PRIx64
            ", expected 0x%016" PRIx64 "\n",
            elapsed_s(), what, (const void *)n, seen, expected);
    abort();
}

#ifdef TORTURE_ASAN
/* ASan finds the use after free itself under the system and debug backends
 * (mimalloc's blocks are invisible to it): report the detection time too. */
static void asan_death(void) {
    fprintf(stderr, "test_smr_torture: DETECTED by ASan after %.3f s\n", elapsed_s());
}
#endif

static node_t *node_new(void) {
    node_t *n = cc_alloc_node(sizeof *n);
    CC_CHECK(n != NULL);
    uint64_t s = atomic_fetch_add_explicit(&g_serial, 1, memory_order_relaxed) + 1;
    atomic_store_explicit(&n->serial, s, memory_order_relaxed);
    n->payload = s * PAYLOAD_KEY;
    atomic_store_explicit(&n->magic, MAGIC, memory_order_relaxed);
    return n; /* published by the caller's release exchange */
}

/* The free function: the node must be intact (a second free of it, or a free
 * of something that is not a live node, shows here), then it is poisoned so
 * that a reader still holding it sees the poison (until the memory is reused:
 * then the serial has changed). */
static void node_free(void *p, size_t size) {
    node_t *n = p;
    CC_CHECK(size == sizeof *n);
    uint64_t m = atomic_load_explicit(&n->magic, memory_order_relaxed);
    if (m != MAGIC) detected("free function got a node that is not live (double free?)", n, m, MAGIC);
    atomic_store_explicit(&n->magic, POISON, memory_order_relaxed);
    atomic_store_explicit(&n->serial, POISON, memory_order_relaxed);
    n->payload = POISON;
    atomic_fetch_add_explicit(&g_freed, 1, memory_order_relaxed);
    cc_free(p, size);
}

static void retire_node(node_t *n) {
    atomic_fetch_add_explicit(&g_retired, 1, memory_order_relaxed);
    cc_smr_retire(n, sizeof *n, node_free);
}

/* A reader's check of a node it reached (inside its section); returns its serial. */
static uint64_t check_node(const node_t *n, const char *where) {
    uint64_t m = atomic_load_explicit(&n->magic, memory_order_relaxed);
    if (m != MAGIC) detected(where, n, m, MAGIC);
    uint64_t s = atomic_load_explicit(&n->serial, memory_order_relaxed);
    uint64_t pl = n->payload;
    if (pl != s * PAYLOAD_KEY) detected(where, n, pl, s * PAYLOAD_KEY);
    return s;
}

/* ---- per-thread randomness and delays ---------------------------------------- */

static uint64_t g_seed;
static _Atomic uint64_t g_seed_seq;
static __thread uint64_t t_rng;

static uint64_t rnd(void) {
    if (t_rng == 0) { /* first use in this thread: its own stream */
        uint64_t k = atomic_fetch_add_explicit(&g_seed_seq, 1, memory_order_relaxed) + 1;
        t_rng = (g_seed ^ (k * PAYLOAD_KEY)) | 1;
    }
    /* xorshift64*: cheap enough for every step of the protocol. */
    t_rng ^= t_rng >> 12;
    t_rng ^= t_rng << 25;
    t_rng ^= t_rng >> 27;
    return (t_rng * 0x2545F4914F6CDD1Dull) >> 11;
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

static void spin(unsigned n) {
    for (unsigned i = 0; i < n; i++) cpu_relax();
}

static void sleep_us(unsigned us) {
    struct timespec ts = {us / 1000000u, (long)(us % 1000000u) * 1000L};
    nanosleep(&ts, NULL);
}

/* One random delay. Out of 1024: `sleep` draws sleep up to max_sleep_us, the
 * next `yield` draws yield, the next `spins` spin up to max_spin; the rest do
 * nothing. */
static void delay(unsigned sleep, unsigned yield, unsigned spins, unsigned max_sleep_us, unsigned max_spin) {
    unsigned r = (unsigned)(rnd() & 1023u);
    if (r < sleep) sleep_us(1u + (unsigned)(rnd() % max_sleep_us));
    else if (r < sleep + yield) sched_yield();
    else if (r < sleep + yield + spins) spin(1u + (unsigned)(rnd() % max_spin));
}

/* The step hook. The revocation steps are where defect 1 lives: between the
 * membarrier and the look at a record (the epoch may move and a reader
 * re-announce meanwhile), and between the read of depth 0 and the CAS (the
 * reader may enter on the fast path meanwhile). Both windows are made wide:
 * often a sleep of up to 1 ms. Every other step gets mostly nothing, some
 * yields and spins, and rarely a sleep (preemption at that point). */
static void torture_hook(enum cc__smr_step step) {
    switch (step) {
    case CC__SMR_STEP_REVOKE_FENCED:
        /* The revoker loaded g_epoch == E before its membarrier; the
         * interesting case is an epoch that moves on before it looks at the
         * records (every announcement of E+1 is then younger than its E). Half
         * of the time wait for that (yielding; bounded, the epoch may be held
         * by a reader or by the sleepers this very pass is about to revoke). */
        uint64_t e = atomic_load_explicit(&cc__smr_epoch, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_fenced, 1, memory_order_relaxed);
        if (rnd() & 1u) {
            uint64_t t0 = now_ns();
            while (atomic_load_explicit(&cc__smr_epoch, memory_order_relaxed) == e &&
                   now_ns() - t0 < FENCED_WAIT_MAX_NS)
                delay(64, 768, 128, 100, 500);
        } else {
            delay(400, 300, 200, 1000, 20000);
        }
        if (atomic_load_explicit(&cc__smr_epoch, memory_order_relaxed) != e)
            atomic_fetch_add_explicit(&g_fenced_moved, 1, memory_order_relaxed);
        break;
    case CC__SMR_STEP_REVOKE_CAS:
        /* The owner read depth 0; give it time to enter, on the fast path. */
        atomic_fetch_add_explicit(&g_cas_steps, 1, memory_order_relaxed);
        delay(400, 300, 200, 1000, 20000);
        break;
    case CC__SMR_STEP_FREE:
        /* Per node freed: a sleep here is rarer, frees come in bursts. */
        delay(1, 8, 16, 500, 2000);
        break;
    default:
        delay(2, 20, 30, 1000, 2000);
        break;
    }
}

/* ---- roles ------------------------------------------------------------------ */

enum role { READER, UPDATER, SLEEPER, RECLAIMER, NROLES };

static bool stopping(void) { return atomic_load_explicit(&g_stop, memory_order_relaxed); }

/* A reader's nodes: each must still be the node it reached (same serial). */
static void check_held(const node_t *const *held, const uint64_t *serial, unsigned k) {
    for (unsigned i = 0; i < k; i++) {
        if (check_node(held[i], "node freed while a reader held it") != serial[i])
            detected("node freed and reused while a reader held it (serial changed)", held[i],
                     atomic_load_explicit(&held[i]->serial, memory_order_relaxed), serial[i]);
    }
}

/* A long hold, inside a section that reached k >= 1 nodes (held, serial,
 * slot) and saw epoch e0 after its enter. First unlink and retire one of the
 * nodes we hold (still reading it afterwards is allowed: we are inside), so
 * that our own polls below would free it if our protection were gone. Then
 * hold until the epoch has moved EPOCH_HOLD past e0, or for up to max_ns,
 * checking the nodes. A node unlinked after we reached it is freed only once
 * the epoch has moved 3 past its retirer's section, which a correct SMR never
 * lets happen while we are inside: there these holds always time out. Where
 * our protection was dropped they last just long enough for the nodes we
 * hold to be freed under us. */
static void hold(const node_t *const *held, const uint64_t *serial, const unsigned *slot, unsigned k,
                 uint64_t e0, uint64_t max_ns) {
    atomic_fetch_add_explicit(&g_holds, 1, memory_order_relaxed);
    unsigned v = (unsigned)(rnd() % k);
    node_t *expect = (node_t *)held[v], *fresh = node_new();
    if (atomic_compare_exchange_strong_explicit(&g_slots[slot[v]], &expect, fresh, memory_order_acq_rel,
                                                memory_order_relaxed))
        retire_node(expect);
    else
        cc_free(fresh, sizeof *fresh); /* never published: nobody else can hold it */
    uint64_t t0 = now_ns();
    while (atomic_load_explicit(&cc__smr_epoch, memory_order_acquire) < e0 + EPOCH_HOLD &&
           now_ns() - t0 < max_ns) {
        /* Help the epoch along from inside the section (a poll nests): it
         * cannot pass e0 + 1 unless our protection is gone. */
        if ((rnd() & 3u) == 0) (void)cc_smr_poll();
        else delay(0, 512, 256, 1, 500);
        check_held(held, serial, k);
    }
    /* Let the retiring threads run their free functions; poll for ours. */
    delay(0, 1024, 0, 1, 1);
    (void)cc_smr_poll();
}

/* One read-side section: walk 1..NSLOTS slots from a random one, check each
 * node, hold them all for a random while, check them again. */
static void read_section(unsigned long_sleep_per_1024) {
    const node_t *held[NSLOTS];
    uint64_t serial[NSLOTS];
    unsigned slot[NSLOTS];
    bool epoch_hold = (rnd() & 7u) == 0;
    unsigned n = 1u + (unsigned)(rnd() % NSLOTS), start = (unsigned)(rnd() % NSLOTS), k = 0;
    bool nested = (rnd() & 15u) == 0;
    cc_smr_enter();
    /* The epoch as seen inside the section: the announced one or the next. */
    uint64_t e0 = atomic_load_explicit(&cc__smr_epoch, memory_order_acquire);
    if (nested) cc_smr_enter();
    for (unsigned i = 0; i < n; i++) {
        unsigned j = (start + i) % NSLOTS;
        /* acquire: pairs with the updater's release exchange (node contents). */
        const node_t *p = atomic_load_explicit(&g_slots[j], memory_order_acquire);
        if (p == NULL) continue;
        serial[k] = check_node(p, "reader reached a freed node");
        slot[k] = j;
        held[k++] = p;
        delay(0, 4, 32, 1, 200);
    }
    /* Hold on: this is where an unlinked node must survive. */
    if (epoch_hold && k > 0) hold(held, serial, slot, k, e0, HOLD_MAX_NS);
    else delay(long_sleep_per_1024, 32, 64, 1000, 2000);
    check_held(held, serial, k);
    /* (I1) in src/smr_epoch.c: while we are inside, g_epoch <= announced + 1 <= e0 + 1.
     * Past that our protection is gone. Keep holding (up to CONFIRM_MAX_NS)
     * until it shows as the use after free it causes, and report that; the
     * violation itself only if no node we hold was freed meanwhile. */
    uint64_t e1 = atomic_load_explicit(&cc__smr_epoch, memory_order_acquire);
    if (e1 > e0 + 1) {
        if (k > 0) hold(held, serial, slot, k, e1, CONFIRM_MAX_NS);
        check_held(held, serial, k);
        detected("the epoch moved 2 past a section that was still running (I1), no held node freed yet", NULL,
                 e1, e0 + 1);
    }
    if (nested) cc_smr_exit();
    cc_smr_exit();
    atomic_fetch_add_explicit(&g_sections, 1, memory_order_relaxed);
}

/* Swap a fresh node into a random slot and retire the old one, inside a
 * section or (1 in 8) outside any. */
static void update_once(void) {
    bool inside = (rnd() & 7u) != 0;
    if (inside) cc_smr_enter();
    node_t *fresh = node_new();
    /* acq_rel: release publishes `fresh`; acquire sees the old node's contents. */
    node_t *old = atomic_exchange_explicit(&g_slots[rnd() % NSLOTS], fresh, memory_order_acq_rel);
    if (old != NULL) {
        (void)check_node(old, "updater unlinked a freed node");
        retire_node(old);
    }
    if (inside) cc_smr_exit();
}

static void run_reader(uint64_t ops) {
    for (uint64_t i = 0; i < ops && !stopping(); i++) {
        read_section(8);
        /* Between sections: usually straight on (the kept announcement is
         * reused on the fast path), sometimes a pause that keeps it, rarely
         * an explicit idle. */
        unsigned r = (unsigned)(rnd() & 1023u);
        if (r < 64) sleep_us(1u + (unsigned)(rnd() % 300));
        else if (r < 66) cc_smr_idle();
        else delay(0, 128, 128, 1, 2000);
    }
}

static void run_updater(uint64_t ops) {
    for (uint64_t i = 0; i < ops && !stopping(); i++) {
        update_once();
        unsigned r = (unsigned)(rnd() & 1023u);
        if (r < 32) {
            (void)cc_smr_poll();
            atomic_fetch_add_explicit(&g_polls, 1, memory_order_relaxed);
        } else if (r < 40) {
            read_section(2);
        }
        delay(2, 16, 64, 300, 2000);
    }
}

/* Uses SMR, then sleeps outside any section without cc_smr_idle(): in
 * asymmetric mode its kept announcement soon blocks the epoch and must be
 * revoked. */
static void run_sleeper(uint64_t ops) {
    for (uint64_t i = 0; i < ops && !stopping(); i++) {
        unsigned burst = 1u + (unsigned)(rnd() % 8);
        for (unsigned j = 0; j < burst; j++) {
            if (rnd() & 1u) read_section(4);
            else update_once();
        }
        sleep_us(20u + (unsigned)(rnd() % 3000));
    }
}

static void run_reclaimer(uint64_t ops) {
    for (uint64_t i = 0; i < ops && !stopping(); i++) {
        unsigned r = (unsigned)(rnd() & 1023u);
        if (r < 512) {
            (void)cc_smr_poll();
            atomic_fetch_add_explicit(&g_polls, 1, memory_order_relaxed);
        } else if (r < 640) {
            CC_CHECK(cc_smr_barrier() == 0);
            atomic_fetch_add_explicit(&g_barriers, 1, memory_order_relaxed);
        } else if (r < 656) {
            /* Inside a section the barrier must refuse, not deadlock. */
            cc_smr_enter();
            errno = 0;
            CC_CHECK(cc_smr_barrier() == -1 && errno == EDEADLK);
            cc_smr_exit();
        } else {
            /* What a full scan blocked by an idle holder does (src/smr_epoch.c,
             * maybe_revoke), without waiting for its patience. */
            cc__smr_revoke_idle_now();
            atomic_fetch_add_explicit(&g_revokes, 1, memory_order_relaxed);
        }
        delay(16, 200, 400, 300, 5000);
    }
}

/* ---- thread slots: workers exit at random and are replaced ------------------ */

#define NREADERS 5
#define NUPDATERS 2
#define NSLEEPERS 2
#define NRECLAIMERS 1
#define NWORKERS (NREADERS + NUPDATERS + NSLEEPERS + NRECLAIMERS)

typedef struct {
    pthread_t thread;
    enum role role;
    bool running; /* under g_mu (main thread's view) */
    bool done;    /* under g_mu: the worker returned, join it */
} worker_t;

static worker_t g_workers[NWORKERS];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

static void *worker_main(void *arg) {
    worker_t *w = arg;
    /* A random lifetime, so threads come and go all run long. */
    uint64_t ops = 16u + rnd() % (w->role == RECLAIMER ? 2000u : w->role == SLEEPER ? 200u : 20000u);
    switch (w->role) {
    case READER: run_reader(ops); break;
    case UPDATER: run_updater(ops); break;
    case SLEEPER: run_sleeper(ops); break;
    case RECLAIMER: run_reclaimer(ops); break;
    default: break;
    }
    /* Sometimes exit holding a kept announcement, sometimes idle first. */
    if (rnd() & 1u) cc_smr_idle();
    pthread_mutex_lock(&g_mu);
    w->done = true;
    pthread_cond_signal(&g_cv);
    pthread_mutex_unlock(&g_mu);
    return NULL;
}

static void start_worker(worker_t *w) {
    w->done = false;
    w->running = true;
    atomic_fetch_add_explicit(&g_spawns, 1, memory_order_relaxed);
    smr_spawn(&w->thread, worker_main, w);
}

static unsigned torture_seconds(void) {
    const char *s = getenv("CC_TORTURE_SECONDS");
    unsigned long v = s ? strtoul(s, NULL, 10) : 5;
    return v ? (unsigned)v : 1;
}

static void test_torture(void **state) {
    (void)state;
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    cc_smr_snapshot_t sbase = cc_smr_stats();

    g_t0_ns = now_ns();
    g_seed = g_t0_ns ^ ((uint64_t)getpid() << 32);
    const char *seed_env = getenv("CC_TORTURE_SEED"); /* the streams; not the schedule */
    if (seed_env) g_seed = strtoull(seed_env, NULL, 0);
    unsigned seconds = torture_seconds();
    printf("test_smr_torture: %u s, %d threads + main, seed 0x%016" PRIx64 ", backend %s, %s\n", seconds,
           NWORKERS, g_seed, cc_alloc_backend(), sbase.asymmetric ? "asymmetric" : "fencing");
    fflush(stdout);
#ifdef TORTURE_ASAN
    __sanitizer_set_death_callback(asan_death);
#endif

    for (int i = 0; i < NSLOTS; i++) atomic_store_explicit(&g_slots[i], node_new(), memory_order_release);
    atomic_store_explicit(&cc__smr_step_hook, torture_hook, memory_order_relaxed);

    int w = 0;
    for (int i = 0; i < NREADERS; i++) g_workers[w++].role = READER;
    for (int i = 0; i < NUPDATERS; i++) g_workers[w++].role = UPDATER;
    for (int i = 0; i < NSLEEPERS; i++) g_workers[w++].role = SLEEPER;
    for (int i = 0; i < NRECLAIMERS; i++) g_workers[w++].role = RECLAIMER;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < NWORKERS; i++) start_worker(&g_workers[i]);

    /* Replace workers as they exit, until the deadline. */
    uint64_t deadline = g_t0_ns + (uint64_t)seconds * 1000000000u;
    struct timespec abs_deadline;
    clock_gettime(CLOCK_REALTIME, &abs_deadline);
    abs_deadline.tv_sec += (time_t)seconds;
    while (now_ns() < deadline) {
        for (int i = 0; i < NWORKERS; i++) {
            if (!g_workers[i].done) continue;
            smr_join(g_workers[i].thread);
            start_worker(&g_workers[i]);
        }
        (void)pthread_cond_timedwait(&g_cv, &g_mu, &abs_deadline);
    }
    atomic_store_explicit(&g_stop, true, memory_order_relaxed);
    pthread_mutex_unlock(&g_mu);
    for (int i = 0; i < NWORKERS; i++) smr_join(g_workers[i].thread);
    atomic_store_explicit(&cc__smr_step_hook, NULL, memory_order_relaxed);

    /* Unlink what is left; then everything ever retired must be freed. */
    for (int i = 0; i < NSLOTS; i++) {
        node_t *n = atomic_exchange_explicit(&g_slots[i], NULL, memory_order_acq_rel);
        if (n) retire_node(n);
    }
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_snapshot_t s = cc_smr_stats();
    printf("test_smr_torture: %.1f s, %" PRIu64 " sections, %" PRIu64 " retired, %" PRIu64
           " thread starts, %" PRIu64 " polls, %" PRIu64 " barriers, %" PRIu64
           " revocation passes, %" PRIu64 " membarriers, epoch %" PRIu64 " -> %" PRIu64 ", peak pending %" PRIu64
           "\n",
           elapsed_s(), atomic_load(&g_sections), atomic_load(&g_retired), atomic_load(&g_spawns),
           atomic_load(&g_polls), atomic_load(&g_barriers), atomic_load(&g_revokes),
           s.membarriers - sbase.membarriers, sbase.epoch, s.epoch, s.peak_pending);
    printf("test_smr_torture: windows: %" PRIu64 " revocation passes past the membarrier, %" PRIu64
           " with the epoch moving meanwhile, %" PRIu64 " revocation CASes, %" PRIu64 " held sections\n",
           atomic_load(&g_fenced), atomic_load(&g_fenced_moved), atomic_load(&g_cas_steps), atomic_load(&g_holds));
    assert_int_equal(atomic_load(&g_freed), atomic_load(&g_retired));
    assert_int_equal(s.retired - sbase.retired, atomic_load(&g_retired));
    assert_int_equal(s.freed, s.retired);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.orphaned, 0);
    assert_int_equal(cc_alloc_stats_snapshot().current_allocated, base.current_allocated);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
