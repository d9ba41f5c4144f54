/* Tries to leave the job directory in several ways and prints what each
 * attempt gave: every one must fail with EACCES (errno 13). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void try_open(const char *path, int flags) {
    int fd = open(path, flags, 0644);
    printf("%s: %s\n", path, fd >= 0 ? "OPENED" : strerror(errno));
    if (fd >= 0) close(fd);
}

int main(void) {
    try_open("../outside.txt", O_RDONLY);
    try_open("../escaped.txt", O_WRONLY | O_CREAT);
    try_open("/etc/passwd", O_RDONLY);
    try_open("sub/../../outside.txt", O_RDONLY);
    try_open("link-out", O_RDONLY);          /* symlink to ../outside.txt */
    try_open("link-abs", O_RDONLY);          /* symlink to /etc/passwd */
    try_open("dir-link/outside.txt", O_RDONLY); /* symlink to .. */
    return 0;
}
