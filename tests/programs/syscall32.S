/* i386 program without libc: says hello through int 0x80, then executes the
   `syscall` instruction (or `sysenter` when built with -DSYSENTER) from
   32-bit code, which no i386 Linux program does by itself (glibc and musl
   use int 0x80 or the vDSO). A node must end it with a signal and keep
   running; if the instruction ever returned, the program says so. */
    .globl _start
    .text
_start:
    movl $4, %eax          /* write(1, before, before_len) */
    movl $1, %ebx
    movl $before, %ecx
    movl $before_len, %edx
    int $0x80
    movl $20, %eax         /* getpid, as a fast system call would ask */
#ifdef SYSENTER
    sysenter
#else
    syscall
#endif
    movl $4, %eax          /* write(1, after, after_len) */
    movl $1, %ebx
    movl $after, %ecx
    movl $after_len, %edx
    int $0x80
    movl $1, %eax          /* exit(0) */
    movl $0, %ebx
    int $0x80
    .data
before: .ascii "before the fast system call\n"
    before_len = . - before
after: .ascii "the fast system call returned\n"
    after_len = . - after
