/* loopback_floor — what one fan-out costs this machine's kernel, with no LiveHub at all.
 *
 * N TCP connections over 127.0.0.1 between two processes. Per pass, W writer threads in the
 * server process (like LiveHub's event loops) write one M-byte message to each of their sockets,
 * one write(2) per socket — the least any server can do per delivery — while a subscriber process
 * (like hubload) epolls its N sockets on one thread and reads. Each message carries its pass's
 * start time (CLOCK_MONOTONIC is system-wide). Prints the median over passes of each pass's
 * delivery latency p50/p99 (pass start → read), the fan-out spread (first → last read), and the
 * CPU each side spent per delivery. On loopback the kernel runs the receiver's TCP path and its
 * wake-up inside the sender's write(2), so the writer CPU is the floor for a server's per-delivery
 * cost on this machine, and latency/spread the floor for a fan-out with the subscribers here.
 *
 *   cc -O2 -pthread -o /tmp/loopback_floor bench/hub/loopback_floor.c
 *   /tmp/loopback_floor [connections 10000] [writers 2] [passes 30] [gap-ms 200] [bytes 300] [read-pause-us 0]
 *
 * read-pause-us: like stompsub's --read-pause-us, the subscriber pauses after an epoll round that
 * did not fill its event array, so it is not woken once per delivery (compare like with like).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int n_conns = 10000, n_writers = 2, n_passes = 30, gap_ms = 200, msg_bytes = 300, read_pause_us = 0;
static int *server_fds;
static pthread_barrier_t start_barrier, done_barrier;
static int64_t pass_start_ns;
static double writer_cpu_ns;
static pthread_mutex_t cpu_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) { perror(what); exit(1); }

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void raise_fd_limit(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* Subscriber process: connect N sockets, then per pass read N messages and send the pass's
 * p50, p99 and spread (ns) up the pipe; at the end its CPU time. */
static void subscriber(struct sockaddr_in addr, int report, int ready) {
    int *fds = calloc(n_conns, sizeof(int));
    int one = 1;
    for (int i = 0; i < n_conns; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int ep = epoll_create1(0);
    for (int i = 0; i < n_conns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) die("epoll_ctl");
    }
    if (write(ready, "r", 1) != 1) die("ready");
    int64_t *lat = calloc(n_conns, sizeof(int64_t));
    int64_t *all = calloc((size_t)n_conns * n_passes, sizeof(int64_t));
    size_t n_all = 0;
    struct epoll_event events[256];
    char *buf = malloc(65536);
    int64_t cpu0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (int pass = 0; pass < n_passes; pass++) {
        int got_msgs = 0;
        int64_t first = 0, last = 0;
        while (got_msgs < n_conns) {
            int n = epoll_wait(ep, events, 256, 1000);
            for (int e = 0; e < n; e++) {
                ssize_t got = read(fds[events[e].data.u32], buf, 65536);
                if (got < msg_bytes) continue;
                int64_t t = now_ns(CLOCK_MONOTONIC), start;
                memcpy(&start, buf, sizeof start);
                if (got_msgs == 0) first = t;
                last = t;
                if (got_msgs < n_conns) lat[got_msgs++] = t - start;
            }
            if (read_pause_us > 0 && n < 256) {
                struct timespec pause = {0, (long)read_pause_us * 1000};
                nanosleep(&pause, NULL);
            }
        }
        memcpy(all + n_all, lat, (size_t)n_conns * sizeof(int64_t));
        n_all += (size_t)n_conns;
        qsort(lat, n_conns, sizeof(int64_t), cmp64);
        int64_t r[3] = {lat[n_conns / 2], lat[(int)(n_conns * 0.99)], last - first};
        if (write(report, r, sizeof r) != sizeof r) die("report");
    }
    int64_t cpu = now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    qsort(all, n_all, sizeof(int64_t), cmp64);
    int64_t tail[3] = {cpu, all[n_all / 2], all[(size_t)(n_all * 0.99)]};
    if (write(report, tail, sizeof tail) != sizeof tail) die("report");
    exit(0);
}

static void *writer(void *arg) {
    long index = (long)arg;
    char *msg = malloc(msg_bytes);
    memset(msg, 'x', msg_bytes);
    for (int pass = 0; pass < n_passes; pass++) {
        pthread_barrier_wait(&start_barrier);
        memcpy(msg, &pass_start_ns, sizeof pass_start_ns);
        int64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        for (int i = (int)index; i < n_conns; i += n_writers) {
            if (write(server_fds[i], msg, msg_bytes) != msg_bytes) die("write");
        }
        int64_t cpu1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        pthread_mutex_lock(&cpu_lock);
        writer_cpu_ns += (double)(cpu1 - cpu0);
        pthread_mutex_unlock(&cpu_lock);
        pthread_barrier_wait(&done_barrier);
    }
    free(msg);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) n_conns = atoi(argv[1]);
    if (argc > 2) n_writers = atoi(argv[2]);
    if (argc > 3) n_passes = atoi(argv[3]);
    if (argc > 4) gap_ms = atoi(argv[4]);
    if (argc > 5) msg_bytes = atoi(argv[5]);
    if (argc > 6) read_pause_us = atoi(argv[6]);
    if (msg_bytes < 8 || n_writers < 1 || n_writers > 64 || read_pause_us < 0 || read_pause_us > 100000) { fprintf(stderr, "bad arguments\n"); return 2; }
    raise_fd_limit();
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 4096) != 0) die("listen");
    getsockname(listener, (struct sockaddr *)&addr, &len);
    int report[2], ready[2];
    if (pipe(report) != 0 || pipe(ready) != 0) die("pipe");
    pid_t child = fork();
    if (child == 0) {
        close(listener);
        subscriber(addr, report[1], ready[1]);
    }
    server_fds = calloc(n_conns, sizeof(int));
    int one = 1;
    for (int i = 0; i < n_conns; i++) {
        server_fds[i] = accept(listener, NULL, NULL);
        if (server_fds[i] < 0) die("accept");
        setsockopt(server_fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    char c;
    if (read(ready[0], &c, 1) != 1) die("subscriber");
    pthread_barrier_init(&start_barrier, NULL, n_writers + 1);
    pthread_barrier_init(&done_barrier, NULL, n_writers + 1);
    pthread_t writers[64];
    for (long w = 0; w < n_writers; w++) pthread_create(&writers[w], NULL, writer, (void *)w);
    int64_t *p50 = calloc(n_passes, 8), *p99 = calloc(n_passes, 8), *spread = calloc(n_passes, 8);
    for (int pass = 0; pass < n_passes; pass++) {
        usleep(gap_ms * 1000);
        pass_start_ns = now_ns(CLOCK_MONOTONIC);
        pthread_barrier_wait(&start_barrier);
        pthread_barrier_wait(&done_barrier);
        int64_t r[3];
        if (read(report[0], r, sizeof r) != sizeof r) die("pass report");
        p50[pass] = r[0];
        p99[pass] = r[1];
        spread[pass] = r[2];
    }
    int64_t tail[3];
    if (read(report[0], tail, sizeof tail) != sizeof tail) die("cpu report");
    int64_t reader_cpu = tail[0];
    for (int w = 0; w < n_writers; w++) pthread_join(writers[w], NULL);
    waitpid(child, NULL, 0);
    qsort(p50, n_passes, 8, cmp64);
    qsort(p99, n_passes, 8, cmp64);
    qsort(spread, n_passes, 8, cmp64);
    double deliveries = (double)n_conns * n_passes;
    printf("loopback floor: %d connections, %d writer threads, 1 subscriber thread (read pause %d us), %d passes of %d B, %d ms apart\n",
           n_conns, n_writers, read_pause_us, n_passes, msg_bytes, gap_ms);
    printf("delivery latency p50 / p99 ms (median pass)  %.1f / %.1f\n", p50[n_passes / 2] / 1e6, p99[n_passes / 2] / 1e6);
    printf("delivery latency p50 / p99 ms (all passes)   %.1f / %.1f\n", tail[1] / 1e6, tail[2] / 1e6);
    printf("fan-out spread ms (median / worst pass)      %.1f / %.1f\n", spread[n_passes / 2] / 1e6, spread[n_passes - 1] / 1e6);
    printf("writer CPU per delivery us                   %.2f\n", writer_cpu_ns / deliveries / 1e3);
    printf("subscriber CPU per delivery us               %.2f\n", reader_cpu / deliveries / 1e3);
    return 0;
}
