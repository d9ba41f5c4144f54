/* Reads input.txt in the job directory, writes its lines upper-cased to
 * output.txt, and prints the number of bytes copied. */
#include <ctype.h>
#include <stdio.h>

int main(void) {
    FILE *in = fopen("input.txt", "r");
    if (!in) { perror("input.txt"); return 2; }
    FILE *out = fopen("output.txt", "w");
    if (!out) { perror("output.txt"); return 3; }
    int c;
    long n = 0;
    while ((c = fgetc(in)) != EOF) {
        fputc(toupper(c), out);
        n++;
    }
    fclose(in);
    if (fclose(out) != 0) { perror("close"); return 4; }
    printf("copied %ld bytes\n", n);
    return 0;
}
