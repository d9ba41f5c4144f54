/* The SiON paper's compute benchmark (§5.1): print the N-th prime, found by
 * trial division, as "prime N = P" and the time taken. Static build:
 *   musl-gcc -static -O2 -o nthprime nthprime.c
 * Usage: nthprime N   (N >= 1; e.g. 1000 -> 7919, 10000 -> 104729) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int is_prime(unsigned long n) {
    if (n < 2) return 0;
    for (unsigned long d = 2; d * d <= n; d++)
        if (n % d == 0) return 0;
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2 || atol(argv[1]) < 1) {
        fprintf(stderr, "usage: %s N   (N >= 1: print the N-th prime)\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long candidate = 1;
    for (long found = 0; found < n;)
        if (is_prime(++candidate)) found++;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("prime %ld = %lu (%.3f s)\n", n, candidate, secs);
    return 0;
}
