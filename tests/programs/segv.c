/* Writes through a null pointer: ends with SIGSEGV (shell status 139). */
#include <stdio.h>

int main(void) {
    printf("about to fault\n");
    fflush(stdout);
    *(volatile int *)0 = 42;
    return 0;
}
