/* A thread bomb: makes idle threads until pthread_create fails, then says
 * whether it made many before the refusal (the job's cap, not the node,
 * ends it) and exits; the idle threads end with the process. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *idle(void *arg) {
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

int main(void) {
    int n = 0;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 65536);
    for (;;) {
        pthread_t t;
        if (pthread_create(&t, &at, idle, NULL) != 0)
            break;
        n++;
    }
    printf("made %s threads, then pthread_create failed\n", n >= 100 ? "over 100" : "few");
    return 0;
}
