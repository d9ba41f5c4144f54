/* Threads (issue 11): four threads add to a shared counter under a mutex,
 * hand a token around with a condition variable, meet at a barrier, and are
 * joined; the totals are printed by the main thread. The same output on
 * every run and every system. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4
#define ROUNDS 20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t barrier;
static long counter;
static int turn;
static int order[THREADS];
static int ordered;

static void *work(void *arg) {
    int id = (int)(long)arg;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        counter += id + 1;
        pthread_mutex_unlock(&lock);
    }
    /* Take the token in id order. */
    pthread_mutex_lock(&lock);
    while (turn != id)
        pthread_cond_wait(&turn_changed, &lock);
    order[ordered++] = id;
    turn++;
    pthread_cond_broadcast(&turn_changed);
    pthread_mutex_unlock(&lock);
    pthread_barrier_wait(&barrier);
    return (void *)(long)(id * 10);
}

int main(void) {
    pthread_t t[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, work, (void *)i) != 0) {
            printf("pthread_create failed\n");
            return 1;
        }
    long sum = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (long)r;
    }
    printf("counter=%ld (expected %ld)\n", counter, (long)ROUNDS * (1 + 2 + 3 + 4));
    printf("order=%d%d%d%d joined=%ld\n", order[0], order[1], order[2], order[3], sum);
    return 0;
}
