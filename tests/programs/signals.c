/* Signal delivery within one process (signal(7)), for the QEMU signal test:
 * a SIGSEGV handler that siglongjmps out (with si_addr), alarm + pause,
 * raise(SIGUSR1) with an SA_SIGINFO handler, SIGUSR2 blocked until
 * unblocked, SIGINT ignored, nanosleep cut by SIGALRM, a handler on a
 * sigaltstack, SIGALRM reaching a busy loop, floating-point work in the
 * main program surviving a timer whose handler does floating-point work
 * too (the FPU/SSE registers are saved in the frame), a POSIX timer's
 * signal with SI_TIMER and its value. Prints what happened;
 * the output is compared with the host's. */
#include <setjmp.h>
#include <sys/time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static sigjmp_buf env;
static volatile sig_atomic_t got;
static volatile void *fault_addr;
static volatile int fault_code;
static volatile int on_alt;
static char altstack[65536];

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    fault_addr = si->si_addr;
    fault_code = si->si_code;
    siglongjmp(env, sig);
}

static void on_usr(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got = sig * 1000 + (si->si_code == SI_USER || si->si_code == SI_TKILL);
    char here;
    on_alt = &here >= altstack && &here < altstack + sizeof altstack;
}

static void on_alrm(int sig) { got = sig; }

static volatile int timer_code, timer_value;
static void on_timer(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    timer_code = si->si_code == SI_TIMER;
    timer_value = si->si_value.sival_int;
}

static volatile double fp_junk;
static volatile int ticks;
/* A handler that uses the SSE/x87 registers the main loop keeps its sums in. */
static void on_tick(int sig) {
    (void)sig;
    double x = 3.0, y = 0.25;
    for (int i = 0; i < 200; i++) {
        x = x * 1.0001 + y;
        y = y * 0.999 - 1e-9;
    }
    fp_junk = x + y;
    ticks++;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    int r = sigsetjmp(env, 1);
    if (r == 0) {
        *(volatile int *)16 = 1;
        printf("no fault\n");
    } else {
        printf("segv: sig %d code %d addr %p\n", r, fault_code, (void *)fault_addr);
    }
    /* Again: siglongjmp restored the mask, so the handler runs twice. */
    r = sigsetjmp(env, 1);
    if (r == 0)
        *(volatile int *)32 = 1;
    printf("segv again: addr %p\n", (void *)fault_addr);

    signal(SIGALRM, on_alrm);
    alarm(1);
    int p = pause();
    printf("pause: %d, got %d\n", p, (int)got);

    sa.sa_sigaction = on_usr;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    got = 0;
    raise(SIGUSR1);
    printf("raise: got %d on_alt %d\n", (int)got, on_alt);

    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    got = 0;
    kill(getpid(), SIGUSR2);
    sigpending(&pend);
    printf("blocked: got %d pending %d\n", (int)got, sigismember(&pend, SIGUSR2));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("unblocked: got %d\n", (int)got);

    signal(SIGINT, SIG_IGN);
    raise(SIGINT);
    printf("SIGINT ignored\n");

    struct timespec req = {3, 0}, rem = {0, 0};
    alarm(1);
    int n = nanosleep(&req, &rem);
    printf("nanosleep: %d, got %d, rem %ld s\n", n, (int)got, (long)rem.tv_sec + (rem.tv_nsec > 500000000));
    /* A program that computes without system calls still gets SIGALRM. */
    got = 0;
    alarm(1);
    while (!got) {
    }
    printf("busy loop: got %d\n", (int)got);
    /* A POSIX timer (timer_create) sends its signal with SI_TIMER. */
    struct sigaction ta;
    memset(&ta, 0, sizeof ta);
    ta.sa_sigaction = on_timer;
    ta.sa_flags = SA_SIGINFO;
    sigaction(SIGVTALRM, &ta, NULL);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGVTALRM;
    sev.sigev_value.sival_int = 42;
    timer_t timer;
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0)
        printf("timer_create failed\n");
    struct itimerspec its = {{0, 0}, {0, 100000000}};
    timer_settime(timer, 0, &its, NULL);
    while (!timer_code)
        pause();
    printf("timer: SI_TIMER %d, value %d\n", timer_code, timer_value);
    timer_delete(timer);
    /* Floating-point sums under a 2 ms interval timer whose handler does
     * floating-point work: the same result as without it. */
    signal(SIGALRM, on_tick);
    struct itimerval every = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &every, NULL);
    double a = 0.0, b = 1.0, c = 0.5;
    for (long i = 1; i <= 6000000; i++) {
        a += 1.0 / (double)i;
        b *= 1.0000001;
        c = c * 0.9999999 + 1e-7;
    }
    setitimer(ITIMER_REAL, &off, NULL);
    /* The same sums without the timer. */
    double a2 = 0.0, b2 = 1.0, c2 = 0.5;
    for (long i = 1; i <= 6000000; i++) {
        a2 += 1.0 / (double)i;
        b2 *= 1.0000001;
        c2 = c2 * 0.9999999 + 1e-7;
    }
    /* Stored as doubles (i386 keeps x87 values in 80 bits until then). */
    volatile double sums[6] = {a, b, c, a2, b2, c2};
    printf("fpu: ticks seen %d, same sums %d: %.9f %.9f %.9f\n", ticks > 0,
           sums[0] == sums[3] && sums[1] == sums[4] && sums[2] == sums[5], sums[0], sums[1], sums[2]);
    fflush(stdout);
    /* No handler: the default action ends the program (status 138). */
    signal(SIGUSR1, SIG_DFL);
    raise(SIGUSR1);
    return 0;
}
