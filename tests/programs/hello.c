/* Prints a greeting: the smallest job (stdout through hostd). */
#include <stdio.h>

int main(void) {
    printf("hello from SiON\n");
    return 0;
}
