/* A random-system-call fuzzer run as a SiON job (issue 14: hostile input
 * never wins). `sysfuzz CALLS SEED` makes CALLS system calls with random
 * numbers and random arguments — small integers, -1, NULL, pointers into
 * a scratch buffer filled with random bytes, kernel and non-canonical
 * addresses, random 64-bit values — through the ABI it was built for
 * (`syscall` on x86_64, `int $0x80` on i386), then prints how many calls
 * returned an error and exits 0. The node must serve the next job after it.
 *
 * Left out, because they would end, stop or rewire this process rather
 * than test the node: exit, fork and exec, calls that block (sleeps, waits,
 * futex, poll), signals to itself and handlers, changes to its own
 * mappings and TLS, and anything that closes or replaces stdin, stdout or
 * stderr. Numbers come from <sys/syscall.h>.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static uint64_t state;

static uint64_t next(void) { /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
}

static long raw(long n, long a, long b, long c, long d, long e, long f) {
    long ret;
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
#else
    /* ebp is the sixth argument; it may be the frame pointer, so save it,
     * and reach the number and the sixth argument through eax alone. */
    long args[2] = {n, f};
    __asm__ volatile("push %%ebp\n\t"
                     "mov 4(%%eax), %%ebp\n\t"
                     "mov 0(%%eax), %%eax\n\t"
                     "int $0x80\n\t"
                     "pop %%ebp"
                     : "=a"(ret)
                     : "a"(args), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                     : "memory");
#endif
    return ret;
}

/* Each guarded: which exist depends on the ABI and the C library. */
static const long skipped[] = {
#ifdef SYS_ppoll_time64
    SYS_ppoll_time64,
#endif
#ifdef SYS_pselect6_time64
    SYS_pselect6_time64,
#endif
#ifdef SYS_futex_time64
    SYS_futex_time64,
#endif
#ifdef SYS_futex_waitv
    SYS_futex_waitv,
#endif
#ifdef SYS_clock_nanosleep_time64
    SYS_clock_nanosleep_time64,
#endif
#ifdef SYS_rt_sigtimedwait_time64
    SYS_rt_sigtimedwait_time64,
#endif
#ifdef SYS_recvmmsg_time64
    SYS_recvmmsg_time64,
#endif
#ifdef SYS_semtimedop_time64
    SYS_semtimedop_time64,
#endif
#ifdef SYS_mq_timedreceive_time64
    SYS_mq_timedreceive_time64,
#endif
#ifdef SYS_mq_timedsend_time64
    SYS_mq_timedsend_time64,
#endif
#ifdef SYS_io_getevents
    SYS_io_getevents,
#endif
#ifdef SYS_io_pgetevents
    SYS_io_pgetevents,
#endif
#ifdef SYS_io_pgetevents_time64
    SYS_io_pgetevents_time64,
#endif
#ifdef SYS_epoll_pwait2
    SYS_epoll_pwait2,
#endif
#ifdef SYS_msgrcv
    SYS_msgrcv,
#endif
#ifdef SYS_sigprocmask
    SYS_sigprocmask,
#endif
#ifdef SYS_exit
    SYS_exit,
#endif
#ifdef SYS_exit_group
    SYS_exit_group,
#endif
#ifdef SYS_fork
    SYS_fork,
#endif
#ifdef SYS_vfork
    SYS_vfork,
#endif
#ifdef SYS_clone
    SYS_clone,
#endif
#ifdef SYS_clone3
    SYS_clone3,
#endif
#ifdef SYS_execve
    SYS_execve,
#endif
#ifdef SYS_execveat
    SYS_execveat,
#endif
#ifdef SYS_nanosleep
    SYS_nanosleep,
#endif
#ifdef SYS_clock_nanosleep
    SYS_clock_nanosleep,
#endif
#ifdef SYS_pause
    SYS_pause,
#endif
#ifdef SYS_rt_sigsuspend
    SYS_rt_sigsuspend,
#endif
#ifdef SYS_sigsuspend
    SYS_sigsuspend,
#endif
#ifdef SYS_wait4
    SYS_wait4,
#endif
#ifdef SYS_waitid
    SYS_waitid,
#endif
#ifdef SYS_waitpid
    SYS_waitpid,
#endif
#ifdef SYS_futex
    SYS_futex,
#endif
#ifdef SYS_poll
    SYS_poll,
#endif
#ifdef SYS_ppoll
    SYS_ppoll,
#endif
#ifdef SYS_select
    SYS_select,
#endif
#ifdef SYS__newselect
    SYS__newselect,
#endif
#ifdef SYS_pselect6
    SYS_pselect6,
#endif
#ifdef SYS_epoll_wait
    SYS_epoll_wait,
#endif
#ifdef SYS_epoll_pwait
    SYS_epoll_pwait,
#endif
#ifdef SYS_rt_sigtimedwait
    SYS_rt_sigtimedwait,
#endif
#ifdef SYS_kill
    SYS_kill,
#endif
#ifdef SYS_tkill
    SYS_tkill,
#endif
#ifdef SYS_tgkill
    SYS_tgkill,
#endif
#ifdef SYS_rt_sigqueueinfo
    SYS_rt_sigqueueinfo,
#endif
#ifdef SYS_rt_tgsigqueueinfo
    SYS_rt_tgsigqueueinfo,
#endif
#ifdef SYS_rt_sigaction
    SYS_rt_sigaction,
#endif
#ifdef SYS_sigaction
    SYS_sigaction,
#endif
#ifdef SYS_signal
    SYS_signal,
#endif
#ifdef SYS_rt_sigreturn
    SYS_rt_sigreturn,
#endif
#ifdef SYS_sigreturn
    SYS_sigreturn,
#endif
#ifdef SYS_alarm
    SYS_alarm,
#endif
#ifdef SYS_setitimer
    SYS_setitimer,
#endif
#ifdef SYS_timer_create
    SYS_timer_create,
#endif
#ifdef SYS_timer_settime
    SYS_timer_settime,
#endif
#ifdef SYS_munmap
    SYS_munmap,
#endif
#ifdef SYS_mremap
    SYS_mremap,
#endif
#ifdef SYS_mprotect
    SYS_mprotect,
#endif
#ifdef SYS_pkey_mprotect
    SYS_pkey_mprotect,
#endif
#ifdef SYS_madvise
    SYS_madvise,
#endif
#ifdef SYS_brk
    SYS_brk,
#endif
#ifdef SYS_arch_prctl
    SYS_arch_prctl,
#endif
#ifdef SYS_set_thread_area
    SYS_set_thread_area,
#endif
#ifdef SYS_modify_ldt
    SYS_modify_ldt,
#endif
#ifdef SYS_set_tid_address
    SYS_set_tid_address,
#endif
#ifdef SYS_ptrace
    SYS_ptrace,
#endif
#ifdef SYS_reboot
    SYS_reboot,
#endif
#ifdef SYS_setrlimit
    SYS_setrlimit,
#endif
#ifdef SYS_prlimit64
    SYS_prlimit64,
#endif
#ifdef SYS_ugetrlimit
    SYS_ugetrlimit,
#endif
#ifdef SYS_prctl
    SYS_prctl,
#endif
#ifdef SYS_seccomp
    SYS_seccomp,
#endif
#ifdef SYS_read
    SYS_read,
#endif
#ifdef SYS_readv
    SYS_readv,
#endif
#ifdef SYS_pread64
    SYS_pread64,
#endif
#ifdef SYS_preadv
    SYS_preadv,
#endif
#ifdef SYS_close
    SYS_close,
#endif
#ifdef SYS_dup2
    SYS_dup2,
#endif
#ifdef SYS_dup3
    SYS_dup3,
#endif
#ifdef SYS_sched_setaffinity
    SYS_sched_setaffinity,
#endif
#ifdef SYS_mlock
    SYS_mlock,
#endif
#ifdef SYS_munlock
    SYS_munlock,
#endif
#ifdef SYS_mlockall
    SYS_mlockall,
#endif
#ifdef SYS_munlockall
    SYS_munlockall,
#endif
#ifdef SYS_unshare
    SYS_unshare,
#endif
#ifdef SYS_setsid
    SYS_setsid,
#endif
#ifdef SYS_io_uring_setup
    SYS_io_uring_setup,
#endif
#ifdef SYS_io_uring_enter
    SYS_io_uring_enter,
#endif
#ifdef SYS_pipe
    SYS_pipe,
#endif
#ifdef SYS_pipe2
    SYS_pipe2,
#endif
#ifdef SYS_mknod
    SYS_mknod,
#endif
#ifdef SYS_mknodat
    SYS_mknodat,
#endif
#ifdef SYS_splice
    SYS_splice,
#endif
#ifdef SYS_tee
    SYS_tee,
#endif
#ifdef SYS_vmsplice
    SYS_vmsplice,
#endif
#ifdef SYS_socketpair
    SYS_socketpair,
#endif
#ifdef SYS_socketcall
    SYS_socketcall,
#endif
#ifdef SYS_accept
    SYS_accept,
#endif
#ifdef SYS_accept4
    SYS_accept4,
#endif
#ifdef SYS_connect
    SYS_connect,
#endif
#ifdef SYS_recvfrom
    SYS_recvfrom,
#endif
#ifdef SYS_recvmsg
    SYS_recvmsg,
#endif
#ifdef SYS_recvmmsg
    SYS_recvmmsg,
#endif
#ifdef SYS_sendto
    SYS_sendto,
#endif
#ifdef SYS_sendmsg
    SYS_sendmsg,
#endif
#ifdef SYS_sendmmsg
    SYS_sendmmsg,
#endif
#ifdef SYS_msgrcv
    SYS_msgrcv,
#endif
#ifdef SYS_msgsnd
    SYS_msgsnd,
#endif
#ifdef SYS_semop
    SYS_semop,
#endif
#ifdef SYS_semtimedop
    SYS_semtimedop,
#endif
#ifdef SYS_mq_timedreceive
    SYS_mq_timedreceive,
#endif
#ifdef SYS_mq_timedsend
    SYS_mq_timedsend,
#endif
#ifdef SYS_flock
    SYS_flock,
#endif
#ifdef SYS_fcntl
    SYS_fcntl,
#endif
#ifdef SYS_fcntl64
    SYS_fcntl64,
#endif
};

static int skip(long n) {
    for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++)
        if (skipped[i] == n)
            return 1;
    return 0;
}

#define SCRATCH 8192
static unsigned char *scratch;
static sigjmp_buf again;

static void on_fault(int sig) {
    (void)sig;
    siglongjmp(again, 1);
}

static long arg(void) {
    switch (next() % 9) {
    case 0: return (long)(next() % 4096);
    case 1: return -1;
    case 2: return 0;
    case 3: return (long)(scratch + next() % SCRATCH);
    case 4: return (long)scratch;
    case 5: return (long)(uintptr_t)0xffff800000001000ULL; /* kernel half */
    case 6: return (long)(uintptr_t)0x0000800000000000ULL; /* non-canonical */
    case 7: return (long)next();
    default: return (long)(next() % 64); /* fd-like */
    }
}

int main(int argc, char **argv) {
    long calls = argc > 1 ? atol(argv[1]) : 20000;
    state = argc > 2 ? strtoull(argv[2], 0, 0) : 1;
    if (state == 0)
        state = 1;
    static volatile long errors, made, faults;
    long highest = 450;
    scratch = mmap(0, SCRATCH + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (scratch == MAP_FAILED || mprotect(scratch + SCRATCH, 4096, PROT_NONE) != 0) {
        perror("sysfuzz: scratch buffer");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);
    sigaction(SIGBUS, &sa, 0);
    /* Back here after a fault, with this signal mask. */
    if (sigsetjmp(again, 1))
        faults++;
    while (made < calls) {
        long n = (long)(next() % (uint64_t)highest);
        if (skip(n))
            continue;
        for (size_t i = 0; i < SCRATCH; i += 8) {
            uint64_t r = next();
            memcpy(scratch + i, &r, 8);
        }
        long a[6];
        for (int i = 0; i < 6; i++)
            a[i] = arg();
        if (n == SYS_mmap
#ifdef SYS_mmap2
            || n == SYS_mmap2
#endif
        ) {
            a[3] &= ~(long)(MAP_FIXED | MAP_FIXED_NOREPLACE);
            a[1] &= 0xffffff; /* at most 16 MiB, so memory lasts */
        }
        if (n == SYS_write || n == SYS_writev || n == SYS_pwrite64 || n == SYS_sendfile) {
            if (a[0] <= 2) /* not onto our own terminal output */
                a[0] = 3 + (a[0] & 0xff);
        }
#ifdef TRACE
        fprintf(stderr, "%ld: %ld(%lx, %lx, %lx, %lx, %lx, %lx)\n", made, n, a[0], a[1], a[2], a[3], a[4], a[5]);
#endif
        long r = raw(n, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (r < 0 && r > -4096)
            errors++;
        made++;
    }
    printf("sysfuzz: %ld calls, %ld errors, %ld faults\n", made, errors, faults);
    return 0;
}
