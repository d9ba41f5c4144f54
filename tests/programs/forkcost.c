/* What a fork costs (issue 10's figure): a process with N MiB of touched
 * heap forks, the child exits at once, the parent waits; the median, min
 * and max over 9 rounds, in ms, for 1 MiB and 64 MiB (or the sizes given). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void measure(size_t mib) {
    char *heap = malloc(mib << 20);
    if (!heap) {
        printf("%zu MiB: no memory\n", mib);
        return;
    }
    memset(heap, 1, mib << 20);
    double ms[9];
    for (int i = 0; i < 9; i++) {
        double t0 = now_ms();
        pid_t c = fork();
        if (c == 0)
            _exit(heap[i] == 1 ? 0 : 1);
        int st;
        waitpid(c, &st, 0);
        ms[i] = now_ms() - t0;
    }
    qsort(ms, 9, sizeof ms[0], cmp);
    printf("fork + exit + wait of a process with %zu MiB touched: median %.1f ms (min %.1f, max %.1f)\n",
           mib, ms[4], ms[0], ms[8]);
    free(heap);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        for (int i = 1; i < argc; i++) measure((size_t)atoi(argv[i]));
    } else {
        measure(1);
        measure(64);
    }
    return 0;
}
