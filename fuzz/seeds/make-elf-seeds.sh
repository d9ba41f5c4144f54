#!/usr/bin/env bash
# Builds the real ELF files of the elf_load corpus (fuzz/corpus/elf_load/elf-*)
# from hello.c and tiny.c: static (musl), static-PIE (musl), dynamic (glibc,
# x86_64 and i386) and libc-free static programs of both ABIs. Needs
# musl-gcc and gcc-multilib (what ./sion installs). The files are committed;
# run this only to renew them, then `cargo run --example seeds` (from fuzz/),
# which builds the syscall seeds that execve the tiny programs.
set -euo pipefail
cd "$(dirname "$0")"
out=../corpus/elf_load
mkdir -p "$out"
small="-Wl,-z,noseparate-code -Wl,--build-id=none -Wl,-z,norelro -fno-asynchronous-unwind-tables -Wl,-z,noexecstack"
musl-gcc -static -Os -s hello.c -o "$out/elf-hello-static-musl"
musl-gcc -static-pie -Os -s hello.c -o "$out/elf-hello-static-pie-musl"
gcc -Os -s hello.c -o "$out/elf-hello-dynamic-x86_64"
gcc -m32 -Os -s hello.c -o "$out/elf-hello-dynamic-i386"
gcc -static -nostdlib -fno-pic -no-pie -Os -s $small tiny.c -o "$out/elf-tiny-x86_64"
gcc -m32 -static -nostdlib -fno-pic -no-pie -Os -s $small tiny.c -o "$out/elf-tiny-i386"
gcc -static-pie -nostdlib -fpie -Os -s $small tiny.c -o "$out/elf-tiny-static-pie"
ls -l "$out"/elf-*
