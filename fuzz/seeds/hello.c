/* A small libc program for the elf_load corpus: built static, static-PIE
 * and dynamic by make-elf-seeds.sh. */
#include <stdio.h>
#include <string.h>

static char buffer[4096]; /* .bss */
static const char greeting[] = "hello from a fuzz seed";

int main(int argc, char **argv) {
    strncpy(buffer, argc > 1 ? argv[1] : greeting, sizeof buffer - 1);
    printf("%s (%d)\n", buffer, argc);
    return argc > 2;
}
