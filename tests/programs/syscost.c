/* Measures the cost of system calls served on the node (getpid) and
 * forwarded to hostd (a 1-byte read of a file), median of many calls. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    long long *t = malloc(sizeof *t * n);
    for (int i = 0; i < n; i++) {
        long long a = now();
        syscall(SYS_getpid);
        t[i] = now() - a;
    }
    qsort(t, n, sizeof *t, cmp);
    printf("getpid_ns=%lld\n", t[n / 2]);
    int fd = open("syscost.dat", O_RDONLY);
    if (fd < 0) { perror("syscost.dat"); return 1; }
    char c;
    for (int i = 0; i < n; i++) {
        long long a = now();
        pread(fd, &c, 1, 0);
        t[i] = now() - a;
    }
    qsort(t, n, sizeof *t, cmp);
    printf("read1_ns=%lld\n", t[n / 2]);
    return 0;
}
