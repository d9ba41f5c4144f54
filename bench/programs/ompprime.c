/* SMP speed-up (issue 12): counts the primes below N by trial division
 * with T OpenMP threads (libgomp), dynamic chunks so every thread stays
 * busy to the end, and prints the count and its own wall time
 * (omp_get_wtime). Usage: ompprime N T */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

static int is_prime(long n) {
    if (n < 2)
        return 0;
    for (long d = 2; d * d <= n; d++)
        if (n % d == 0)
            return 0;
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: ompprime N THREADS\n");
        return 2;
    }
    long n = atol(argv[1]);
    int threads = atoi(argv[2]);
    if (n < 1 || threads < 1) {
        fprintf(stderr, "ompprime: N and THREADS must be positive\n");
        return 2;
    }
    omp_set_num_threads(threads);
    double start = omp_get_wtime();
    long count = 0;
#pragma omp parallel for schedule(dynamic, 2000) reduction(+ : count)
    for (long i = 0; i < n; i++)
        count += is_prime(i);
    double seconds = omp_get_wtime() - start;
    printf("ompprime: n=%ld threads=%d primes=%ld seconds=%.3f\n", n, threads, count, seconds);
    return 0;
}
