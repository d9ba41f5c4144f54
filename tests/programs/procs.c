/* Processes inside one job (issue 10): fork, pipes, dup2, wait statuses,
 * SIGCHLD, waitid, process groups, kill between processes, SIGPIPE, the
 * errors of execve, and execve of another program (the other ABI's build
 * of this file, named in argv[1]). Everything is printed by the first
 * process after the child it reports on has ended, so the output is the
 * same on every run.
 *
 *   procs PEER     the whole sequence; PEER is the program to exec (the
 *                  last part: a read interrupted by a handler, restarted
 *                  with SA_RESTART and EINTR without)
 *   procs child    what the exec'd program does: prints and exits 5
 *   procs sigint   waits in pause() for SIGINT (Ctrl-C at the submitter)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t chld_seen;
static volatile sig_atomic_t int_seen;

static void on_chld(int sig) { (void)sig; chld_seen++; }
static void on_int(int sig) { (void)sig; int_seen = 1; }
static volatile sig_atomic_t alrm_seen;
static void on_alrm(int sig) { (void)sig; alrm_seen = 1; }

static void status_line(const char *what, int st) {
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", what, WTERMSIG(st));
    else
        printf("%s: status %#x\n", what, st);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        printf("exec'd child: argc=%d argv[2]=%s ppid-is-parent=%d\n", argc,
               argc > 2 ? argv[2] : "-", getppid() > 1);
        fflush(stdout);
        return 5;
    }
    if (argc > 1 && strcmp(argv[1], "sigint") == 0) {
        signal(SIGINT, on_int);
        printf("ready\n");
        fflush(stdout);
        while (!int_seen)
            pause();
        printf("caught SIGINT\n");
        return 7;
    }
    const char *peer = argc > 1 ? argv[1] : argv[0];
    setvbuf(stdout, NULL, _IONBF, 0);

    /* 1. A pipe from a child whose stdout is dup2'd onto it; EOF after its
     * end; its exit status. */
    int fds[2];
    if (pipe(fds) != 0) return 100;
    pid_t c = fork();
    if (c == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        for (int i = 0; i < 3000; i++) printf("line %d of a pipe's worth\n", i);
        fflush(stdout);
        _exit(3);
    }
    close(fds[1]);
    char buf[4096];
    long total = 0, lines = 0;
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) {
        total += n;
        for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
    }
    close(fds[0]);
    int st;
    printf("pipe: %ld bytes, %ld lines, then EOF (%zd)\n", total, lines, n);
    if (waitpid(c, &st, 0) != c) return 101;
    status_line("pipe writer", st);

    /* 2. SIGCHLD, WNOHANG, and kill(2) of a child waiting in pause(). */
    signal(SIGCHLD, on_chld);
    c = fork();
    if (c == 0) {
        for (;;) pause();
    }
    printf("WNOHANG on a live child: %d\n", (int)waitpid(c, &st, WNOHANG));
    kill(c, SIGTERM);
    if (waitpid(c, &st, 0) != c) return 102;
    status_line("paused child", st);
    printf("SIGCHLD seen: %d\n", chld_seen > 0);
    errno = 0;
    int none = (int)waitpid(-1, &st, WNOHANG);
    printf("no more children: %d %s\n", none, strerror(errno));

    /* 3. Process groups and getppid in a child; waitid. */
    pid_t me = getpid();
    c = fork();
    if (c == 0) {
        int ok = getppid() == me && getpgrp() == getpgid(me);
        setpgid(0, 0);
        ok = ok && getpgrp() == getpid();
        _exit(ok ? 9 : 1);
    }
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, c, &si, WEXITED) != 0) return 103;
    printf("waitid: signo=%d code=%s status=%d pid-matches=%d\n", si.si_signo,
           si.si_code == CLD_EXITED ? "CLD_EXITED" : "other", si.si_status,
           si.si_pid == c);

    /* 4. SIGPIPE: ignored, a write gives EPIPE; by default it kills. */
    if (pipe(fds) != 0) return 104;
    close(fds[0]);
    signal(SIGPIPE, SIG_IGN);
    errno = 0;
    n = write(fds[1], "x", 1);
    printf("write to a pipe without readers: %zd %s\n", n, strerror(errno));
    signal(SIGPIPE, SIG_DFL);
    c = fork();
    if (c == 0) {
        write(fds[1], "x", 1);
        _exit(0);
    }
    close(fds[1]);
    waitpid(c, &st, 0);
    status_line("writer without readers", st);

    /* 5. execve errors leave the caller as it was. */
    char *noargs[] = {"x", NULL};
    errno = 0;
    execve("./no-such-program", noargs, NULL);
    printf("execve missing: %s\n", strerror(errno));
    int f = open("data.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write(f, "not a program\n", 14);
    close(f);
    errno = 0;
    execve("./data.txt", noargs, NULL);
    printf("execve not executable: %s\n", strerror(errno));
    chmod("data.txt", 0755);
    errno = 0;
    execve("./data.txt", noargs, NULL);
    printf("execve not a program: %s\n", strerror(errno));
    unlink("data.txt");

    /* 6. fork + execve of the peer program (the other ABI), with a pipe
     * kept across the exec and one closed by O_CLOEXEC. */
    int keep[2], gone[2];
    if (pipe(keep) != 0 || pipe2(gone, O_CLOEXEC) != 0) return 105;
    c = fork();
    if (c == 0) {
        close(keep[0]);
        dup2(keep[1], 1);
        char *args[] = {(char *)peer, "child", "hello", NULL};
        char *env[] = {"FROM=procs", NULL};
        execve(peer, args, env);
        _exit(127);
    }
    close(keep[1]);
    close(gone[1]);
    total = 0;
    while ((n = read(keep[0], buf + total, sizeof buf - 1 - total)) > 0) total += n;
    buf[total] = 0;
    printf("from the exec'd program: %s", buf);
    printf("O_CLOEXEC pipe sees EOF: %zd\n", read(gone[0], buf, 1));
    waitpid(c, &st, 0);
    status_line("exec'd program", st);

    /* 7. A read from a pipe interrupted by SIGALRM's handler: restarted
     * with SA_RESTART, EINTR without. */
    for (int restart = 1; restart >= 0; restart--) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alrm;
        sa.sa_flags = restart ? SA_RESTART : 0;
        sigaction(SIGALRM, &sa, NULL);
        if (pipe(fds) != 0) return 106;
        c = fork();
        if (c == 0) {
            close(fds[0]);
            sleep(2);
            write(fds[1], "y", 1);
            _exit(0);
        }
        close(fds[1]);
        alrm_seen = 0;
        alarm(1);
        errno = 0;
        n = read(fds[0], buf, 1);
        int e = errno;
        printf("read with%s SA_RESTART: %zd (%s), handler ran: %d\n",
               restart ? "" : "out", n, n < 0 ? strerror(e) : "data", alrm_seen);
        waitpid(c, &st, 0);
        close(fds[0]);
    }
    return 0;
}
