/* Reads the GDT register with `sgdt`, which user-mode instruction prevention
   (UMIP) turns into a fault: a program must not learn where the kernel keeps
   its descriptor tables. */
#include <stdio.h>

struct __attribute__((packed)) table_register {
    unsigned short limit;
    unsigned long base;
};

int main(void) {
    struct table_register gdt;
    printf("about to run sgdt\n");
    fflush(stdout);
    __asm__ volatile("sgdt %0" : "=m"(gdt));
    printf("gdt base %#lx limit %u\n", gdt.base, gdt.limit);
    return 0;
}
