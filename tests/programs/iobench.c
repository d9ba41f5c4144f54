/* Forwarded file I/O (issue 11's benchmark): writes a file of N MiB
 * sequentially in 64 KiB writes, reads it back sequentially in 64 KiB and in
 * 4 KiB reads, then does 4 KiB preads at pseudo-random offsets for a second;
 * prints MB/s and preads per second, one figure per line. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static char buf[65536];

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 100;
    long total = mib << 20;
    for (long i = 0; i < (long)sizeof buf; i++)
        buf[i] = (char)(i * 7);
    int fd = open("iobench.dat", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 1;
    double t = now();
    for (long done = 0; done < total; done += sizeof buf)
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) return 2;
    if (fsync(fd) != 0) return 3;
    close(fd);
    printf("write_mb_s=%.1f\n", mib / (now() - t));
    for (int size = 65536; size >= 4096; size /= 16) {
        fd = open("iobench.dat", O_RDONLY);
        t = now();
        long got = 0;
        ssize_t n;
        while ((n = read(fd, buf, size)) > 0) got += n;
        close(fd);
        if (got != total) return 4;
        printf("read%dk_mb_s=%.1f\n", size / 1024, mib / (now() - t));
    }
    fd = open("iobench.dat", O_RDONLY);
    unsigned long x = 12345;
    long preads = 0;
    t = now();
    while (now() - t < 1.0) {
        x = x * 6364136223846793005ul + 1442695040888963407ul;
        if (pread(fd, buf, 4096, (long)((x >> 20) % (unsigned long)(total / 4096)) * 4096) != 4096)
            return 5;
        preads++;
    }
    printf("pread4k_per_s=%.0f\n", preads / (now() - t));
    close(fd);
    unlink("iobench.dat");
    return 0;
}
