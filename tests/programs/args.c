/* Prints argc, every argument, the environment variables named SION_*,
 * some auxiliary-vector values and identity calls, one per line. */
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/utsname.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "SION_", 5) == 0)
            printf("env %s\n", *e);
    printf("pagesz=%lu\n", getauxval(AT_PAGESZ));
    printf("random=%s\n", getauxval(AT_RANDOM) ? "yes" : "no");
    printf("execfn=%s\n", (const char *)getauxval(AT_EXECFN));
    struct utsname u;
    if (uname(&u) == 0)
        printf("uname=%s %s\n", u.sysname, u.machine);
    char cwd[4096];
    printf("cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    return 0;
}
