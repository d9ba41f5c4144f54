/* Allocates 64 MiB and touches it page by page, then checks it. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    size_t size = 64u << 20;
    unsigned char *p = malloc(size);
    if (!p) { printf("malloc failed\n"); return 1; }
    for (size_t i = 0; i < size; i += 4096)
        p[i] = (unsigned char)(i >> 12);
    for (size_t i = 0; i < size; i += 4096)
        if (p[i] != (unsigned char)(i >> 12)) { printf("bad at %zu\n", i); return 1; }
    printf("touched %zu MiB\n", size >> 20);
    free(p);
    return 0;
}
