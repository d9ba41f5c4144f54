/* /init of the Linux guest of `./sion bench`: mounts devtmpfs for the console,
 * runs every line of /bench.conf (a program of the initramfs and its
 * arguments, separated by spaces) in order, with stdout and stderr on the
 * serial console, then powers the machine off. Markers for the driver:
 *   "SIONBENCH init"            init started (the guest's boot is over)
 *   "SIONBENCH run LINE"        before each line
 *   "SIONBENCH status N"        its exit status (128+signal for a signal)
 *   "SIONBENCH done"            after the last line
 * Static build: musl-gcc -static -O2 -o init init.c */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    mkdir("/dev", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    int fd = open("/dev/console", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) close(fd);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("SIONBENCH init\n");
    FILE *conf = fopen("/bench.conf", "r");
    char line[512];
    while (conf && fgets(line, sizeof line, conf)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) continue;
        printf("SIONBENCH run %s\n", line);
        char *argv[32];
        int argc = 0;
        for (char *tok = strtok(line, " "); tok && argc < 31; tok = strtok(NULL, " ")) argv[argc++] = tok;
        argv[argc] = NULL;
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[0], argv);
            perror(argv[0]);
            _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        printf("SIONBENCH status %d\n",
               WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    printf("SIONBENCH done\n");
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    for (;;) pause();
}
