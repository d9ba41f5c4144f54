/* The smallest program for the elf_load and syscall corpora: no libc, one
 * exit system call (x86_64 `syscall` or i386 `int 0x80`), with a .data and
 * .bss byte so that the image has a writable segment. */
static volatile int data_word = 7;
static volatile int bss_word;

void _start(void) {
    bss_word = data_word;
#if defined(__x86_64__)
    __asm__ volatile("syscall" : : "a"(231), "D"(bss_word) : "rcx", "r11", "memory");
#else
    __asm__ volatile("int $0x80" : : "a"(1), "b"(bss_word) : "memory");
#endif
    for (;;) {
    }
}
