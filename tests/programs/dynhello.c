/* A small dynamically linked program (issue 11): libc and libm from the
 * submitter's system, stdin, arguments, floating point, exit status. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    char line[256];
    int n = 0;
    long bytes = 0;
    while (fgets(line, sizeof line, stdin)) {
        n++;
        bytes += (long)strlen(line);
    }
    volatile double two = 2.0;
    printf("argc=%d last=%s lines=%d bytes=%ld sqrt2=%.6f\n", argc, argv[argc - 1], n, bytes,
           sqrt(two));
    return argc;
}
