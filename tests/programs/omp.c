/* OpenMP (issue 11): a parallel reduction and a parallel loop filling an
 * array with 4 threads of libgomp; the sums are exact integers, so the
 * output is the same everywhere. */
#include <omp.h>
#include <stdio.h>

#define N 200000

static long values[N];

int main(void) {
    omp_set_num_threads(4);
    long sum = 0;
    int threads = 0;
#pragma omp parallel reduction(+ : sum)
    {
#pragma omp single
        threads = omp_get_num_threads();
#pragma omp for
        for (int i = 0; i < N; i++) {
            values[i] = (long)i * 3;
            sum += values[i];
        }
    }
    long check = 0;
    for (int i = 0; i < N; i++)
        check += values[i];
    printf("threads=%d sum=%ld check=%ld\n", threads, sum, check);
    return sum == check ? 0 : 1;
}
