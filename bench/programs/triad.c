/* Memory-bound compute kernel for `./sion bench`: the STREAM triad
 * a[i] = b[i] + s * c[i] over three arrays of N doubles, repeated R times.
 * Prints "BENCH triad_s <seconds>" (the timed repetitions) and
 * "BENCH triad_mb_s <MB/s>" (3 * 8 * N bytes moved per repetition).
 * Usage: triad [N [R]]   (defaults 2000000 and 10) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int reps = argc > 2 ? atoi(argv[2]) : 10;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c || n < 1 || reps < 1) {
        fprintf(stderr, "triad: cannot allocate 3 x %ld doubles\n", n);
        return 1;
    }
    for (long i = 0; i < n; i++) {
        a[i] = 0.0;
        b[i] = (double)i;
        c[i] = (double)(n - i);
    }
    const double s = 3.0;
    double t0 = now();
    for (int r = 0; r < reps; r++)
        for (long i = 0; i < n; i++) a[i] = b[i] + s * c[i];
    double secs = now() - t0;
    /* Check the result so the loop cannot be dropped: a[i] = i + 3 (n - i). */
    double sum = 0.0;
    for (long i = 0; i < n; i += n / 16 + 1) sum += a[i] - ((double)i + s * (double)(n - i));
    if (sum != 0.0) {
        fprintf(stderr, "triad: wrong result (%g)\n", sum);
        return 1;
    }
    printf("BENCH triad_s %.6f\n", secs);
    printf("BENCH triad_mb_s %.1f\n", 3.0 * 8.0 * n * reps / secs / 1e6);
    return 0;
}
