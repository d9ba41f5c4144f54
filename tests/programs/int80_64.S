/* x86_64 program without libc using int 0x80 (the i386 ABI, as Linux gives
 * 64-bit code): write(1, msg, len) and exit(9). The message must lie below
 * 4 GiB, as for any int 0x80 pointer. */
    .globl _start
    .text
_start:
    movl $4, %eax          /* i386 write */
    movl $1, %ebx
    movl $msg, %ecx
    movl $len, %edx
    int $0x80
    movl $1, %eax          /* i386 exit */
    movl $9, %ebx
    int $0x80
    .data
msg: .ascii "int 0x80 from x86_64\n"
    len = . - msg
