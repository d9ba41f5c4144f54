/* Linux side of the IPC and system-call comparison of `./sion bench`, run in
 * the Linux guest. For each of the SiON paper's Table 3 sizes it measures,
 * in TSC cycles (median of ITER):
 *  - ipc_oneway: one-way send + receive between two processes over an
 *    AF_UNIX datagram socket pair, steady state: the sender reads the TSC and
 *    sends; the receiver reads the TSC as soon as recv returns and sends that
 *    value back, so the sender knows both ends (the same method as SiON's
 *    t-ipcbench, which answers with `reply`);
 *  - ipc_setup: the same message with the socket set-up the paper counted:
 *    socketpair + send + recv + close of both ends, in one process;
 * and nullsys: one getpid system call (raw syscall, no libc cache).
 * Prints "BENCH <key>_cycles[_SIZE] <median>".
 * Usage: ipcbench [ITER]   (default 2000) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const int SIZES[] = {4, 1024, 4096, 8192, 16384, 65500};
#define NSIZES (int)(sizeof SIZES / sizeof SIZES[0])
#define MAXSIZE 65500

static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t median(uint64_t *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    return v[n / 2];
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    int iter = argc > 1 ? atoi(argv[1]) : 2000;
    int warm = iter / 10 + 1;
    uint64_t *t = malloc(sizeof *t * iter);
    static char msg[MAXSIZE], buf[MAXSIZE];
    memset(msg, 0x5a, sizeof msg);

    for (int i = 0; i < iter; i++) {
        uint64_t a = rdtsc();
        syscall(SYS_getpid);
        t[i] = rdtsc() - a;
    }
    printf("BENCH nullsys_cycles %llu\n", (unsigned long long)median(t, iter));

    int data[2], back[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, data) || socketpair(AF_UNIX, SOCK_DGRAM, 0, back))
        die("socketpair");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        /* Receiver: answer every message with the TSC read right after it
         * arrived; a 1-byte message ends it. */
        for (;;) {
            ssize_t n = recv(data[1], buf, sizeof buf, 0);
            uint64_t now = rdtsc();
            if (n <= 1) _exit(n < 0);
            if (send(back[0], &now, sizeof now, 0) != sizeof now) _exit(1);
        }
    }
    for (int s = 0; s < NSIZES; s++) {
        int size = SIZES[s];
        for (int i = -warm; i < iter; i++) {
            uint64_t a = rdtsc(), got;
            if (send(data[0], msg, size, 0) != size) die("send");
            if (recv(back[1], &got, sizeof got, 0) != sizeof got) die("recv");
            if (i >= 0) t[i] = got - a;
        }
        printf("BENCH ipc_oneway_cycles_%d %llu\n", size, (unsigned long long)median(t, iter));
    }
    send(data[0], msg, 1, 0);
    waitpid(child, NULL, 0);

    for (int s = 0; s < NSIZES; s++) {
        int size = SIZES[s];
        for (int i = -warm; i < iter; i++) {
            uint64_t a = rdtsc();
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) die("socketpair");
            if (send(sv[0], msg, size, 0) != size) die("send (set-up)");
            if (recv(sv[1], buf, sizeof buf, 0) != size) die("recv (set-up)");
            close(sv[0]);
            close(sv[1]);
            if (i >= 0) t[i] = rdtsc() - a;
        }
        printf("BENCH ipc_setup_cycles_%d %llu\n", size, (unsigned long long)median(t, iter));
    }
    return 0;
}
