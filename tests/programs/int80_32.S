/* i386 program without libc: write(1, msg, len) and exit(7) via int 0x80. */
    .globl _start
    .text
_start:
    movl $4, %eax          /* write */
    movl $1, %ebx
    movl $msg, %ecx
    movl $len, %edx
    int $0x80
    movl $1, %eax          /* exit */
    movl $7, %ebx
    int $0x80
    .data
msg: .ascii "int 0x80 from i386\n"
    len = . - msg
