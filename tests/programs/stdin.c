/* Copies stdin to stdout upper-cased and prints the byte count to stderr. */
#include <ctype.h>
#include <stdio.h>

int main(void) {
    int c;
    long n = 0;
    while ((c = getchar()) != EOF) {
        putchar(toupper(c));
        n++;
    }
    fprintf(stderr, "%ld bytes\n", n);
    return 0;
}
