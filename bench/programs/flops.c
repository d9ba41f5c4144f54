/* Floating-point compute kernel for `./sion bench`: a dense N x N
 * double-precision matrix product C = A * B (2 N^3 flops), checked
 * against a closed form. Prints "BENCH fp_s <seconds>" and
 * "BENCH fp_mflops <Mflop/s>".
 * Usage: flops [N]   (default 160) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 160;
    if (n < 2) return 2;
    double *a = malloc(sizeof *a * n * n), *b = malloc(sizeof *b * n * n), *c = calloc((size_t)n * n, sizeof *c);
    if (!a || !b || !c) return 1;
    /* A[i][k] = 1 + i / n, B[k][j] = 1 / (k + 1): C[i][j] = (1 + i / n) * H(n). */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            a[i * n + k] = 1.0 + (double)i / n;
            b[i * n + k] = 1.0 / (i + 1);
        }
    double t0 = now();
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            double x = a[i * n + k];
            for (int j = 0; j < n; j++) c[i * n + j] += x * b[k * n + j];
        }
    double secs = now() - t0;
    double h = 0.0;
    for (int k = 0; k < n; k++) h += 1.0 / (k + 1);
    /* Row i of C is (1 + i/n) times the column sums of B: B's rows are constant. */
    for (int i = 0; i < n; i += n / 7 + 1)
        for (int j = 0; j < n; j += n / 5 + 1) {
            double want = (1.0 + (double)i / n) * h;
            if (fabs(c[i * n + j] - want) > 1e-9 * want) {
                fprintf(stderr, "flops: wrong result at %d,%d: %g, want %g\n", i, j, c[i * n + j], want);
                return 1;
            }
        }
    printf("BENCH fp_s %.6f\n", secs);
    printf("BENCH fp_mflops %.1f\n", 2.0 * n * n * n / secs / 1e6);
    return 0;
}
