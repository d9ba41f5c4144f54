/* SMP corners (issue 12), each a mode of one program whose output is the
 * same on every run and on Linux:
 *   counter  — 4 threads add 1 to a shared counter 200000 times each under
 *              a pthread mutex (a futex when contended): the exact total.
 *   pingpong — 2 threads hand a token back and forth 20000 times through
 *              shared memory, with no system call: finishes only when both
 *              run at the same moment (on one CPU each hand-over would wait
 *              for a time slice; the spin budget then runs out).
 *   fpu      — 4 threads compute long series in different rounding modes
 *              (SSE and x87), preempted many times: each keeps its own FPU
 *              state, so each result is the one a lone thread gets.
 *   unmap    — a thread keeps reading a page; main unmaps it; the reader's
 *              next read after it saw the unmap faults (SIGSEGV), as Linux
 *              does: no CPU keeps using a stale TLB entry.
 *   spin S [T] — T threads (1 by default) each keep a CPU busy for S
 *              seconds (a CPU-bound job). */
#define _GNU_SOURCE
#include <fenv.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *count(void *arg) {
    (void)arg;
    for (int i = 0; i < 200000; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static _Atomic int token;
static _Atomic int gave_up;
#define TRIPS 20000
/* Spins a thread may wait in all: ample when both run at once, used up
 * within a few hundred hand-overs when each waits for a time slice. */
#define BUDGET 1500000000L

static void *pong(void *arg) {
    int me = (int)(long)arg;
    long spins = 0;
    for (int i = 0; i < TRIPS; i++) {
        while (atomic_load(&token) != me) {
            if (atomic_load(&gave_up) || ++spins > BUDGET) {
                atomic_store(&gave_up, 1);
                return NULL;
            }
        }
        atomic_store(&token, 1 - me);
    }
    return NULL;
}

static const int modes[4] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
static double sse_result[4];
static long double x87_result[4];

static void *series(void *arg) {
    int id = (int)(long)arg;
    fesetround(modes[id]);
    volatile double s = 0;
    volatile long double l = 0;
    for (int k = 1; k <= 3000000; k++) {
        s += 1.0 / ((double)k * (id + 3));
        l += 1.0L / ((long double)k * (id + 7));
    }
    sse_result[id] = s;
    x87_result[id] = l;
    fesetround(FE_TONEAREST);
    return NULL;
}

static volatile char *page;
static atomic_int unmapped, reading;
static long reads_after;
static sigjmp_buf reader_jump;

static void on_segv(int sig) {
    (void)sig;
    siglongjmp(reader_jump, 1);
}

static void *reader(void *arg) {
    (void)arg;
    if (sigsetjmp(reader_jump, 1)) {
        printf("unmap: the reader faulted after %ld reads past the unmap\n", reads_after);
        return NULL;
    }
    volatile long sum = 0;
    for (long i = 0; i < 4000000000L; i++) {
        int seen = atomic_load(&unmapped);
        sum += page[i % 4096];
        atomic_store(&reading, 1);
        if (seen)
            reads_after++;
    }
    printf("unmap: the reader never faulted (%ld reads past the unmap)\n", reads_after);
    return NULL;
}

static double spin_seconds;

static void *spin(void *arg) {
    (void)arg;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 1000000; i++)
            x += i;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < spin_seconds);
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    pthread_t t[4];
    if (!strcmp(mode, "counter")) {
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, count, NULL);
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
        printf("counter=%ld (expected 800000)\n", counter);
        return counter == 800000 ? 0 : 1;
    }
    if (!strcmp(mode, "pingpong")) {
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, pong, (void *)(long)i);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        printf(gave_up ? "pingpong: gave up (the threads did not run at once)\n"
                       : "pingpong: %d round trips\n", TRIPS);
        return gave_up;
    }
    if (!strcmp(mode, "fpu")) {
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, series, (void *)(long)i);
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < 4; i++)
            printf("fpu %d: %.17g %.21Lg\n", i, sse_result[i], x87_result[i]);
        return 0;
    }
    if (!strcmp(mode, "unmap")) {
        page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            return 2;
        memset((void *)page, 1, 4096);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_segv;
        sigaction(SIGSEGV, &sa, NULL);
        pthread_create(&t[0], NULL, reader, NULL);
        while (!atomic_load(&reading))
            ;
        munmap((void *)page, 4096);
        atomic_store(&unmapped, 1);
        pthread_join(t[0], NULL);
        return 0;
    }
    if (!strcmp(mode, "spin") && argc > 2) {
        spin_seconds = atof(argv[2]);
        int threads = argc > 3 ? atoi(argv[3]) : 1;
        if (threads < 1 || threads > 4)
            return 2;
        for (int i = 1; i < threads; i++)
            pthread_create(&t[i], NULL, spin, NULL);
        spin(NULL);
        for (int i = 1; i < threads; i++)
            pthread_join(t[i], NULL);
        printf("%d thread(s) spun for %s s\n", threads, argv[2]);
        return 0;
    }
    fprintf(stderr, "usage: smp counter|pingpong|fpu|unmap|spin SECONDS [THREADS]\n");
    return 2;
}
