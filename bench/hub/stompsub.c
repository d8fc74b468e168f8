/* stompsub — N STOMP-1.2-over-WebSocket subscribers in C (epoll, non-blocking sockets, libc +
 * pthread only): a drop-in replacement for the Swift bench/hubload binary, for
 * `bench/hub/stomp_fanout.py --native PATH`. Same options, same stdout protocol (one line each,
 * flushed):
 *   READY {...}      every launched connection is subscribed or failed
 *   COMPLETE {...}   (with --expect M) every subscribed connection has M deliveries
 *   RESULT {...}     after stdin EOF / a "STOP" line / --max-seconds; then all connections are
 *                    closed (WebSocket close 1000) and the process exits 0.
 * Its point is CPU: the subscribers share the cores with the server, so the less each delivery
 * costs here, the more of the machine the server gets. Hot path per readiness event: one read(2)
 * into a per-thread buffer, one clock_gettime, WebSocket frames parsed in place, STOMP frames
 * walked in place, the `bm<seq>@<CLOCK_MONOTONIC ns>` marker found with memchr; no allocation
 * per delivery (only amortised array growth). A frame split across reads is kept in a small
 * per-connection carry buffer.
 *
 *   cc -O2 -Wall -Wextra -pthread -o bench/.cache/stompsub bench/hub/stompsub.c
 *   bench/.cache/stompsub --port P --subscribers N --destination /topic/live/ROOM/chat [...]
 *
 * Threads: the main thread paces connects (--connect-rate, --max-in-flight), prints the lines and
 * watches stdin; each of the --event-loops threads owns an epoll set, its share of the
 * connections (round robin), a 10 ms timerfd (handshake timeouts, loop-lag samples) and its own
 * statistics, which the main thread merges after asking each thread to freeze them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ options */

static const char *o_host = "127.0.0.1";
static int o_port = 0;
static const char *o_path = "/ws/live";
static long o_subscribers = 0;
static const char *o_destination = "";
static double o_connect_rate = 2000.0;
static long o_max_in_flight = 200;
static int o_event_loops = 1;
static const char *o_subprotocols = "v12.stomp,v11.stomp,v10.stomp";
static double o_handshake_timeout = 30.0;
static double o_max_seconds = 600.0;
static long o_expect = 0;
static const char *o_join = NULL;
static int o_receipt = 1;
static long o_read_pause_us = 0;

static const char usage_text[] =
    "usage: stompsub --port P --subscribers N --destination /topic/live/ROOM/chat\n"
    "                [--host 127.0.0.1] [--path /ws/live] [--connect-rate 2000] [--max-in-flight 200]\n"
    "                [--event-loops 1] [--subprotocol v12.stomp,v11.stomp,v10.stomp]\n"
    "                [--handshake-timeout 30] [--max-seconds 600] [--expect M] [--join /app/live/ROOM/join]\n"
    "                [--no-receipt] [--read-pause-us 0]\n"
    "Opens N STOMP-over-WebSocket subscribers, prints `READY {json}`, records the latency of every\n"
    "MESSAGE carrying `bm<seq>@<CLOCK_MONOTONIC ns>`, and on stdin EOF / `STOP` / --max-seconds\n"
    "prints `RESULT {json}` and exits 0. (C drop-in for bench/hubload.)\n";

static void usage_fail(const char *msg, const char *arg) {
    fprintf(stderr, "stompsub: %s%s\n%s\n", msg, arg ? arg : "", usage_text);
    exit(2);
}

static long parse_long(const char *name, const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) usage_fail("needs an integer: ", name);
    return v;
}

static double parse_double(const char *name, const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v != v) usage_fail("needs a number: ", name);
    return v;
}

static void parse_options(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-receipt")) { o_receipt = 0; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage_text, stdout); exit(0); }
        static const char *const valued[] = {"--host", "--port", "--path", "--subscribers", "--destination",
            "--connect-rate", "--max-in-flight", "--event-loops", "--subprotocol", "--handshake-timeout",
            "--max-seconds", "--expect", "--join", "--read-pause-us", NULL};
        int known = 0;
        for (int k = 0; valued[k]; k++) if (!strcmp(a, valued[k])) known = 1;
        if (!known) usage_fail("unknown option ", a);
        if (i + 1 >= argc) usage_fail("needs a value: ", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) o_host = v;
        else if (!strcmp(a, "--port")) { long p = parse_long(a, v); o_port = (p > 0 && p < 65536) ? (int)p : 0; }
        else if (!strcmp(a, "--path")) o_path = v;
        else if (!strcmp(a, "--subscribers")) o_subscribers = parse_long(a, v);
        else if (!strcmp(a, "--destination")) o_destination = v;
        else if (!strcmp(a, "--connect-rate")) o_connect_rate = parse_double(a, v);
        else if (!strcmp(a, "--max-in-flight")) o_max_in_flight = parse_long(a, v);
        else if (!strcmp(a, "--event-loops")) { long e = parse_long(a, v); o_event_loops = (e >= 1 && e <= 64) ? (int)e : 0; }
        else if (!strcmp(a, "--subprotocol")) o_subprotocols = v;
        else if (!strcmp(a, "--handshake-timeout")) o_handshake_timeout = parse_double(a, v);
        else if (!strcmp(a, "--max-seconds")) o_max_seconds = parse_double(a, v);
        else if (!strcmp(a, "--expect")) o_expect = parse_long(a, v);
        else if (!strcmp(a, "--join")) o_join = v;
        else if (!strcmp(a, "--read-pause-us")) { long u = parse_long(a, v); o_read_pause_us = (u >= 0 && u <= 100000) ? u : -1; }
    }
    if (o_port <= 0) usage_fail("--port is required", NULL);
    if (o_read_pause_us < 0) usage_fail("--read-pause-us out of range (0..100000)", NULL);
    if (o_subscribers < 0 || o_subscribers > 1000000) usage_fail("--subscribers out of range", NULL);
    if (o_destination[0] != '/') usage_fail("--destination is required", NULL);
    if (!(o_connect_rate > 0) || o_max_in_flight <= 0 || o_event_loops < 1) usage_fail("bad rate/in-flight/event-loops", NULL);
    if (!(o_max_seconds > 0) || !(o_handshake_timeout > 0)) usage_fail("bad timeouts", NULL);
}

/* ------------------------------------------------------------------ small helpers */

static inline int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_s(double s) {
    if (!(s > 0)) return;
    struct timespec req = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)}, rem;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) req = rem;
}

static void emit_line(const char *s, size_t n) {
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(1, s + off, n - off);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            return;
        }
        off += (size_t)w;
    }
}

static long raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur > (rlim_t)LONG_MAX ? LONG_MAX : (long)rl.rlim_cur;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6
         + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A /proc/self/status field in KiB (VmRSS, VmHWM), or -1. */
static long proc_status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    size_t fl = strlen(field);
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, field, fl) && line[fl] == ':') {
            v = strtol(line + fl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* libm-free rounding (the build line has no -lm). */
static int64_t round_half_even(double x) {  /* x >= 0 */
    int64_t k = (int64_t)x;
    double f = x - (double)k;
    if (f > 0.5 || (f == 0.5 && (k & 1))) k++;
    return k;
}

static double round_away(double x) {  /* Swift's .rounded() */
    if (x != x || x > 9e18 || x < -9e18) return x;
    return x >= 0 ? (double)(int64_t)(x + 0.5) : -(double)(int64_t)(-x + 0.5);
}

static inline uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t seed64(void) {
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) s = (uint64_t)mono_ns() ^ ((uint64_t)getpid() << 32);
    return s ? s : 0x9E3779B97F4A7C15ULL;
}

/* ------------------------------------------------------------------ SHA-1 + base64 (handshake) */

static inline uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const uint8_t *b) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | (uint32_t)b[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) { f = (bb & c) | (~bb & d); k = 0x5A827999; }
        else if (i < 40) { f = bb ^ c ^ d; k = 0x6ED9EBA1; }
        else if (i < 60) { f = (bb & c) | (bb & d) | (c & d); k = 0x8F1BBCDC; }
        else { f = bb ^ c ^ d; k = 0xCA62C1D6; }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d; d = c; c = rol32(bb, 30); bb = a; a = t;
    }
    h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e;
}

static void sha1(const uint8_t *m, size_t n, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) sha1_block(h, m + i);
    uint8_t blk[128] = {0};
    size_t r = n - i;
    memcpy(blk, m + i, r);
    blk[r] = 0x80;
    size_t total = r + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++) blk[total - 1 - k] = (uint8_t)(bits >> (8 * k));
    sha1_block(h, blk);
    if (total == 128) sha1_block(h, blk + 64);
    for (int k = 0; k < 5; k++) {
        out[4 * k] = (uint8_t)(h[k] >> 24); out[4 * k + 1] = (uint8_t)(h[k] >> 16);
        out[4 * k + 2] = (uint8_t)(h[k] >> 8); out[4 * k + 3] = (uint8_t)h[k];
    }
}

static size_t base64(const uint8_t *in, size_t n, char *out) {  /* out: 4*ceil(n/3)+1 */
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18]; out[o++] = tab[(v >> 12) & 63]; out[o++] = tab[(v >> 6) & 63]; out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18]; out[o++] = tab[(v >> 12) & 63]; out[o++] = '='; out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18]; out[o++] = tab[(v >> 12) & 63]; out[o++] = tab[(v >> 6) & 63]; out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

/* base64(SHA-1(key + GUID)), 28 chars + NUL */
static void ws_accept_for(const char *key, char out[29]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t buf[128], dig[20];
    size_t kl = strlen(key);
    memcpy(buf, key, kl);
    memcpy(buf + kl, guid, sizeof guid - 1);
    sha1(buf, kl + sizeof guid - 1, dig);
    base64(dig, 20, out);
}

/* ------------------------------------------------------------------ shared state */

enum { F_CONNECT, F_HANDSHAKE, F_STOMP, F_TIMEOUT, F_CLOSED, F_KINDS };
static const char *const fail_names[F_KINDS] = {"connect", "websocket_handshake", "stomp_error", "timeout",
                                                "closed_before_subscribed"};

static atomic_long g_started, g_subscribed, g_failed, g_in_flight, g_open, g_complete, g_closed_by_server;
static atomic_long g_fail[F_KINDS];
static atomic_int g_shutting_down;

static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static int g_addr_ok;

/* Unmasked STOMP payloads, built once. */
static char *f_connect, *f_subscribe, *f_join;
static size_t f_connect_len, f_subscribe_len, f_join_len;

#define RBUF_SIZE (256 * 1024)
#define MAX_MESSAGE (1 << 24)
#define MAX_SEQUENCE (1 << 20)
#define MAX_STORED_LATENCIES 20000000
#define MAX_LAG_SAMPLES 100000
#define MAX_HTTP_RESPONSE 16384
#define MAX_CODES 32
#define MAX_PROTOS 16

enum { P_TCP = 1, P_HTTP, P_CONNECTING, P_SUBSCRIBING, P_SUBSCRIBED, P_DRAIN, P_CLOSED };

typedef struct conn {
    int fd;
    uint8_t phase;
    uint8_t reported, subscribed, closing_by_us;
    uint8_t close_after_flush, shut_after_flush, in_pend, in_frag;
    uint32_t events;
    struct conn *prev, *next;  /* pending (handshake) list, launch order = deadline order */
    int64_t deadline;
    long count;                /* deliveries */
    uint8_t *carry; size_t carry_len, carry_cap;  /* incomplete frame / HTTP response */
    uint8_t *frag; size_t frag_len, frag_cap;     /* fragmented message */
    uint8_t *out; size_t out_len, out_cap;        /* unsent bytes (rare) */
    char key[25];
} conn;

enum { CMD_START_LAG = 1, CMD_FREEZE = 2, CMD_SHUTDOWN = 4 };

typedef struct loop {
    int idx, ep, efd_launch, efd_cmd, tfd;
    char tag_launch, tag_cmd, tag_timer;  /* their addresses tag epoll events */
    atomic_int cmd;
    sem_t frozen_sem;
    pthread_t th;
    uint64_t rng;
    uint8_t *rbuf;
    uint8_t *wbuf; size_t wcap;
    conn **conns; size_t nconns, capconns;
    conn *pend_head, *pend_tail;
    /* statistics: touched only by this thread until `frozen`, then read by the main thread */
    int frozen, sampling;
    int64_t last_tick;
    int64_t *lat; size_t nlat, caplat;
    long deliveries, unmarked, error_frames, out_of_range;
    int64_t first_rx, last_rx;
    int32_t *seq_count; int64_t *seq_first, *seq_last, *seq_sent; size_t seq_cap;
    int code_key[MAX_CODES]; long code_count[MAX_CODES]; int ncodes;
    char proto_key[MAX_PROTOS][64]; long proto_count[MAX_PROTOS]; int nprotos;
    int64_t *lags; size_t nlags;
    long *per_conn; size_t nper;
} loop;

static loop *g_loops;

/* ------------------------------------------------------------------ connection plumbing */

static int reserve(uint8_t **b, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 1024;
    while (nc < need) nc *= 2;
    void *p = realloc(*b, nc);
    if (!p) return -1;
    *b = p;
    *cap = nc;
    return 0;
}

static void pend_remove(loop *L, conn *c) {
    if (!c->in_pend) return;
    if (c->prev) c->prev->next = c->next; else L->pend_head = c->next;
    if (c->next) c->next->prev = c->prev; else L->pend_tail = c->prev;
    c->prev = c->next = NULL;
    c->in_pend = 0;
}

static void set_events(loop *L, conn *c, uint32_t ev) {
    if (c->fd < 0 || c->events == ev) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(L->ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

static void fail(loop *L, conn *c, int kind);

/* Closes the socket (buffers are freed later, by free_bufs, at a point where no parser holds them). */
static void conn_close(loop *L, conn *c) {
    if (c->fd < 0) return;
    int fd = c->fd;
    c->fd = -1;
    c->phase = P_CLOSED;
    close(fd);
    atomic_fetch_sub_explicit(&g_open, 1, memory_order_relaxed);
    if (!c->reported) {
        fail(L, c, F_CLOSED);
    } else if (c->subscribed && !c->closing_by_us && !atomic_load_explicit(&g_shutting_down, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&g_closed_by_server, 1, memory_order_relaxed);
    }
}

static void free_bufs(conn *c) {
    free(c->carry); c->carry = NULL; c->carry_len = c->carry_cap = 0;
    free(c->frag); c->frag = NULL; c->frag_len = c->frag_cap = 0;
    free(c->out); c->out = NULL; c->out_len = c->out_cap = 0;
}

static void fail(loop *L, conn *c, int kind) {
    if (c->reported) return;
    c->reported = 1;
    pend_remove(L, c);
    atomic_fetch_add_explicit(&g_fail[kind], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_failed, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&g_in_flight, 1, memory_order_relaxed);
    c->closing_by_us = 1;
    conn_close(L, c);
}

static void succeed(loop *L, conn *c) {
    if (c->reported) return;
    c->reported = 1;
    c->subscribed = 1;
    pend_remove(L, c);
    atomic_fetch_add_explicit(&g_subscribed, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&g_in_flight, 1, memory_order_relaxed);
}

static void conn_write(loop *L, conn *c, const uint8_t *buf, size_t n) {
    if (c->fd < 0) return;
    if (c->out_len == 0) {
        ssize_t w = write(c->fd, buf, n);
        if (w == (ssize_t)n) return;
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                conn_close(L, c);
                return;
            }
            w = 0;
        }
        buf += w;
        n -= (size_t)w;
    }
    if (reserve(&c->out, &c->out_cap, c->out_len + n) != 0) {
        conn_close(L, c);
        return;
    }
    memcpy(c->out + c->out_len, buf, n);
    c->out_len += n;
    set_events(L, c, EPOLLIN | EPOLLOUT);
}

static void on_writable(loop *L, conn *c) {
    while (c->out_len > 0) {
        ssize_t w = write(c->fd, c->out, c->out_len);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            conn_close(L, c);
            return;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
    }
    set_events(L, c, EPOLLIN);
    if (c->close_after_flush) {
        conn_close(L, c);
    } else if (c->shut_after_flush) {
        c->shut_after_flush = 0;
        shutdown(c->fd, SHUT_WR);
    }
}

/* One masked client frame (RFC 6455 §5.3), a fresh random key per frame. */
static void ws_send(loop *L, conn *c, uint8_t opcode, const void *payload, size_t n) {
    if (c->fd < 0) return;
    if (n + 14 > L->wcap) {
        if (reserve(&L->wbuf, &L->wcap, n + 14) != 0) { conn_close(L, c); return; }
    }
    uint8_t *o = L->wbuf;
    size_t h = 0;
    o[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        o[h++] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        o[h++] = 0x80 | 126;
        o[h++] = (uint8_t)(n >> 8);
        o[h++] = (uint8_t)n;
    } else {
        o[h++] = 0x80 | 127;
        for (int k = 7; k >= 0; k--) o[h++] = (uint8_t)((uint64_t)n >> (8 * k));
    }
    uint32_t key = (uint32_t)(xorshift(&L->rng) >> 32);
    uint8_t m[4] = {(uint8_t)(key >> 24), (uint8_t)(key >> 16), (uint8_t)(key >> 8), (uint8_t)key};
    memcpy(o + h, m, 4);
    h += 4;
    const uint8_t *p = payload;
    for (size_t j = 0; j < n; j++) o[h + j] = p[j] ^ m[j & 3];
    conn_write(L, c, o, h + n);
}

static void close_after_send(loop *L, conn *c) {
    if (c->fd < 0) return;
    if (c->out_len == 0) conn_close(L, c);
    else c->close_after_flush = 1;
}

static void protocol_close(loop *L, conn *c, uint16_t code) {
    if (c->phase == P_CLOSED) return;
    uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    ws_send(L, c, 0x8, body, 2);
    c->phase = P_CLOSED;
    close_after_send(L, c);
}

/* ------------------------------------------------------------------ statistics (hot) */

static void grow_seq(loop *L, size_t need) {
    size_t nc = L->seq_cap ? L->seq_cap : 1024;
    while (nc < need) nc *= 2;
    if (nc > MAX_SEQUENCE) nc = MAX_SEQUENCE;
    int32_t *a = realloc(L->seq_count, nc * sizeof *a);
    if (a) L->seq_count = a;
    int64_t *b = realloc(L->seq_first, nc * sizeof *b);
    if (b) L->seq_first = b;
    int64_t *d = realloc(L->seq_last, nc * sizeof *d);
    if (d) L->seq_last = d;
    int64_t *e = realloc(L->seq_sent, nc * sizeof *e);
    if (e) L->seq_sent = e;
    if (!a || !b || !d || !e) return;  /* keep the old capacity (entries beyond it are not recorded) */
    size_t old = L->seq_cap;
    memset(L->seq_count + old, 0, (nc - old) * sizeof *a);
    memset(L->seq_first + old, 0, (nc - old) * sizeof *b);
    memset(L->seq_last + old, 0, (nc - old) * sizeof *d);
    memset(L->seq_sent + old, 0, (nc - old) * sizeof *e);
    L->seq_cap = nc;
}

static inline void record(loop *L, int64_t seq, int64_t sent, int64_t now) {
    L->deliveries++;
    if (L->nlat < MAX_STORED_LATENCIES) {
        if (L->nlat == L->caplat) {
            size_t nc = L->caplat * 2;
            int64_t *p = realloc(L->lat, nc * sizeof *p);
            if (p) { L->lat = p; L->caplat = nc; }
        }
        if (L->nlat < L->caplat) L->lat[L->nlat++] = now - sent;
    }
    if (L->first_rx == 0) L->first_rx = now;
    L->last_rx = now;
    if (seq < 0 || seq >= MAX_SEQUENCE) {
        L->out_of_range++;
        return;
    }
    if ((size_t)seq >= L->seq_cap) {
        grow_seq(L, (size_t)seq + 1);
        if ((size_t)seq >= L->seq_cap) return;
    }
    L->seq_count[seq]++;
    if (L->seq_first[seq] == 0) {
        L->seq_first[seq] = now;
        L->seq_sent[seq] = sent;
    }
    L->seq_last[seq] = now;
}

/* first `bm<digits>@<digits>` in the body (same scan as hubload) */
static inline void on_message(loop *L, conn *c, const uint8_t *p, size_t bs, size_t be, int64_t now) {
    if (L->frozen) return;
    size_t j = bs;
    while (j + 4 < be) {
        const uint8_t *hit = memchr(p + j, 'b', be - 4 - j);
        if (!hit) break;
        j = (size_t)(hit - p);
        if (p[j + 1] == 'm') {
            size_t k = j + 2, ss = k;
            uint64_t seq = 0;
            while (k < be && p[k] >= '0' && p[k] <= '9' && k - ss < 12) seq = seq * 10 + (uint64_t)(p[k++] - '0');
            if (k > ss && k < be && p[k] == '@') {
                k++;
                size_t ts = k;
                uint64_t sent = 0;
                while (k < be && p[k] >= '0' && p[k] <= '9' && k - ts < 19) sent = sent * 10 + (uint64_t)(p[k++] - '0');
                if (k > ts) {
                    record(L, (int64_t)seq, (int64_t)sent, now);
                    c->count++;
                    if (c->count == o_expect) atomic_fetch_add_explicit(&g_complete, 1, memory_order_relaxed);
                    return;
                }
            }
        }
        j++;
    }
    L->unmarked++;
}

/* ------------------------------------------------------------------ STOMP */

static void subscribed_now(loop *L, conn *c) {
    c->phase = P_SUBSCRIBED;
    succeed(L, c);
    if (f_join) ws_send(L, c, 0x1, f_join, f_join_len);
}

static void dispatch(loop *L, conn *c, const uint8_t *p, size_t cs, size_t ce, size_t bs, size_t be, int64_t now) {
    size_t len = ce - cs;
    if (len == 0) return;
    uint8_t c0 = p[cs];
    if (len == 7 && c0 == 'M') {  /* MESSAGE */
        on_message(L, c, p, bs, be, now);
    } else if (len == 9 && c0 == 'C') {  /* CONNECTED */
        if (c->phase != P_CONNECTING) return;
        c->phase = P_SUBSCRIBING;
        ws_send(L, c, 0x1, f_subscribe, f_subscribe_len);
        if (c->fd >= 0 && !o_receipt) subscribed_now(L, c);
    } else if (len == 7 && c0 == 'R') {  /* RECEIPT (only the SUBSCRIBE one is asked for) */
        if (c->phase == P_SUBSCRIBING) subscribed_now(L, c);
    } else if (len == 5 && c0 == 'E') {  /* ERROR */
        if (c->phase == P_CONNECTING || c->phase == P_SUBSCRIBING) fail(L, c, F_STOMP);
        else if (!L->frozen) L->error_frames++;
    }
}

static inline int has_content_length(const uint8_t *p) {
    return !memcmp(p, "content-length:", 15);
}

/* Every STOMP frame of one WebSocket message (heart-beat EOLs between frames allowed). */
static void stomp_frames(loop *L, conn *c, const uint8_t *p, size_t n, int64_t now) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        if (b == '\n' || b == '\r' || b == 0) { i++; continue; }
        size_t cs = i;
        while (i < n && p[i] != '\n') i++;
        size_t ce = i;
        if (ce > cs && p[ce - 1] == '\r') ce--;
        i++;
        long clen = -1;
        while (i < n) {
            size_t ls = i;
            while (i < n && p[i] != '\n') i++;
            size_t le = i;
            if (le > ls && p[le - 1] == '\r') le--;
            i++;
            if (le == ls) break;
            if (le - ls > 15 && has_content_length(p + ls)) {
                long v = 0;
                size_t j = ls + 15;
                while (j < le && p[j] >= '0' && p[j] <= '9' && v < (1L << 40)) v = v * 10 + (p[j++] - '0');
                clen = v;
            }
        }
        size_t bs = i < n ? i : n, be;
        if (clen >= 0 && bs + (size_t)clen <= n) {
            be = bs + (size_t)clen;
            i = be + 1;
        } else {
            be = bs;
            const uint8_t *z = memchr(p + bs, 0, n - bs);
            be = z ? (size_t)(z - p) : n;
            i = be + 1;
        }
        dispatch(L, c, p, cs, ce, bs, be, now);
        if (c->fd < 0 || c->phase >= P_DRAIN) return;
    }
}

/* ------------------------------------------------------------------ WebSocket (server frames) */

static void ws_frame(loop *L, conn *c, int fin, uint8_t opcode, const uint8_t *pl, size_t n, int64_t now) {
    switch (opcode) {
    case 0x1: case 0x2:  /* text, binary */
        if (c->in_frag) { protocol_close(L, c, 1002); return; }
        if (fin) {
            stomp_frames(L, c, pl, n, now);
        } else {
            if (reserve(&c->frag, &c->frag_cap, n > 512 ? n * 2 : 1024) != 0) { conn_close(L, c); return; }
            memcpy(c->frag, pl, n);
            c->frag_len = n;
            c->in_frag = 1;
        }
        break;
    case 0x0:  /* continuation */
        if (!c->in_frag) { protocol_close(L, c, 1002); return; }
        if (c->frag_len + n > MAX_MESSAGE) { c->in_frag = 0; protocol_close(L, c, 1009); return; }
        if (reserve(&c->frag, &c->frag_cap, c->frag_len + n) != 0) { conn_close(L, c); return; }
        memcpy(c->frag + c->frag_len, pl, n);
        c->frag_len += n;
        if (fin) {
            c->in_frag = 0;
            stomp_frames(L, c, c->frag, c->frag_len, now);
            c->frag_len = 0;
        }
        break;
    case 0x9:  /* ping → pong, same payload */
        ws_send(L, c, 0xA, pl, n);
        break;
    case 0xA:
        break;
    case 0x8: {  /* close: record the code, echo it (RFC 6455 §5.5.1), close the socket */
        int code = n >= 2 ? (pl[0] << 8 | pl[1]) : 1005;
        if (!L->frozen) {
            int k = 0;
            while (k < L->ncodes && L->code_key[k] != code) k++;
            if (k == L->ncodes && k < MAX_CODES) { L->code_key[k] = code; L->code_count[k] = 0; L->ncodes++; }
            if (k < L->ncodes) L->code_count[k]++;
        }
        uint8_t echo[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        ws_send(L, c, 0x8, echo, code == 1005 ? 0 : 2);
        c->phase = P_CLOSED;
        close_after_send(L, c);
        break;
    }
    default:
        protocol_close(L, c, 1002);
    }
}

/* Complete frames of p[0..n); returns the bytes consumed. */
static size_t ws_frames(loop *L, conn *c, const uint8_t *p, size_t n, int64_t now) {
    size_t i = 0;
    while (n - i >= 2) {
        uint8_t b0 = p[i], b1 = p[i + 1];
        uint64_t len = b1 & 0x7F;
        size_t hdr = 2;
        if (len == 126) {
            if (n - i < 4) return i;
            len = (uint64_t)p[i + 2] << 8 | p[i + 3];
            hdr = 4;
        } else if (len == 127) {
            if (n - i < 10) return i;
            len = 0;
            for (int k = 0; k < 8; k++) len = len << 8 | p[i + 2 + k];
            if (len > MAX_MESSAGE) { protocol_close(L, c, 1009); return n; }
            hdr = 10;
        }
        if ((b1 & 0x80) || (b0 & 0x70)) { protocol_close(L, c, 1002); return n; }  /* masked / RSV */
        if (n - i < hdr + len) return i;
        const uint8_t *pl = p + i + hdr;
        i += hdr + (size_t)len;
        ws_frame(L, c, b0 & 0x80, b0 & 0x0F, pl, (size_t)len, now);
        if (c->fd < 0 || c->phase >= P_DRAIN) return n;
    }
    return i;
}

/* Parses carry[0..carry_len) and keeps what is left. */
static void ws_parse_carry(loop *L, conn *c, int64_t now) {
    size_t used = ws_frames(L, c, c->carry, c->carry_len, now);
    if (c->fd < 0 || c->phase >= P_DRAIN) { c->carry_len = 0; return; }
    memmove(c->carry, c->carry + used, c->carry_len - used);
    c->carry_len -= used;
}

static void ws_input(loop *L, conn *c, const uint8_t *p, size_t n, int64_t now) {
    if (c->carry_len > 0) {
        if (reserve(&c->carry, &c->carry_cap, c->carry_len + n) != 0) { conn_close(L, c); return; }
        memcpy(c->carry + c->carry_len, p, n);
        c->carry_len += n;
        ws_parse_carry(L, c, now);
        return;
    }
    size_t used = ws_frames(L, c, p, n, now);
    if (c->fd < 0 || c->phase >= P_DRAIN || used == n) return;
    if (reserve(&c->carry, &c->carry_cap, n - used > 512 ? n - used : 512) != 0) { conn_close(L, c); return; }
    memcpy(c->carry, p + used, n - used);
    c->carry_len = n - used;
}

/* ------------------------------------------------------------------ HTTP upgrade */

static void record_subprotocol(loop *L, const char *s, size_t n) {
    if (L->frozen) return;
    char name[64];
    if (n > sizeof name - 1) n = sizeof name - 1;
    memcpy(name, s, n);
    name[n] = 0;
    int k = 0;
    while (k < L->nprotos && strcmp(L->proto_key[k], name)) k++;
    if (k == L->nprotos) {
        if (k == MAX_PROTOS) return;
        memcpy(L->proto_key[k], name, n + 1);
        L->proto_count[k] = 0;
        L->nprotos++;
    }
    L->proto_count[k]++;
}

/* 101 + Upgrade: websocket + the right Sec-WebSocket-Accept; 0 when good. */
static int http_check(loop *L, conn *c, const char *h, size_t n) {
    if (n < 12 || memcmp(h, "HTTP/1.1 101", 12) != 0 || (h[12] != ' ' && h[12] != '\r')) return -1;
    char expect[29];
    ws_accept_for(c->key, expect);
    int accept_ok = 0, upgrade_ok = 0;
    const char *proto = "(none)";
    size_t plen = 6;
    const char *end = h + n, *p = memchr(h, '\n', n);
    p = p ? p + 1 : end;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        const char *le = e;
        if (le > p && le[-1] == '\r') le--;
        if (le == p) break;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon) {
            size_t nl = (size_t)(colon - p);
            const char *v = colon + 1, *ve = le;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            size_t vl = (size_t)(ve - v);
            if (nl == 20 && !strncasecmp(p, "sec-websocket-accept", 20)) accept_ok = vl == 28 && !memcmp(v, expect, 28);
            else if (nl == 7 && !strncasecmp(p, "upgrade", 7)) upgrade_ok = vl == 9 && !strncasecmp(v, "websocket", 9);
            else if (nl == 22 && !strncasecmp(p, "sec-websocket-protocol", 22)) { proto = v; plen = vl; }
        }
        p = e + 1;
    }
    if (!accept_ok || !upgrade_ok) return -1;
    record_subprotocol(L, proto, plen);
    return 0;
}

static void http_input(loop *L, conn *c, const uint8_t *p, size_t n, int64_t now) {
    if (reserve(&c->carry, &c->carry_cap, c->carry_len + n) != 0) { conn_close(L, c); return; }
    memcpy(c->carry + c->carry_len, p, n);
    c->carry_len += n;
    const uint8_t *e = memmem(c->carry, c->carry_len, "\r\n\r\n", 4);
    if (!e) {
        if (c->carry_len > MAX_HTTP_RESPONSE) fail(L, c, F_HANDSHAKE);
        return;
    }
    size_t hlen = (size_t)(e - c->carry) + 4;
    if (http_check(L, c, (const char *)c->carry, hlen) != 0) {
        fail(L, c, F_HANDSHAKE);
        return;
    }
    c->phase = P_CONNECTING;
    ws_send(L, c, 0x1, f_connect, f_connect_len);
    if (c->fd < 0) return;
    memmove(c->carry, c->carry + hlen, c->carry_len - hlen);
    c->carry_len -= hlen;
    if (c->carry_len > 0) ws_parse_carry(L, c, now);
}

static void on_connected(loop *L, conn *c) {
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
    if (err) { fail(L, c, F_CONNECT); return; }
    uint8_t raw[16];
    uint64_t a = xorshift(&L->rng), b = xorshift(&L->rng);
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &b, 8);
    base64(raw, 16, c->key);
    int n = snprintf((char *)L->wbuf, L->wcap,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
                     o_path, o_host, o_port, c->key, o_subprotocols);
    if (n < 0 || (size_t)n >= L->wcap) { fail(L, c, F_HANDSHAKE); return; }
    c->phase = P_HTTP;
    set_events(L, c, EPOLLIN);
    conn_write(L, c, L->wbuf, (size_t)n);
}

static void on_readable(loop *L, conn *c) {
    ssize_t n = read(c->fd, L->rbuf, RBUF_SIZE);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        conn_close(L, c);
        return;
    }
    if (n == 0) { conn_close(L, c); return; }
    if (c->phase >= P_DRAIN) return;  /* closing: discard until EOF */
    int64_t now = mono_ns();           /* once per read, like hubload's once per channelRead */
    if (c->phase == P_HTTP) http_input(L, c, L->rbuf, (size_t)n, now);
    else ws_input(L, c, L->rbuf, (size_t)n, now);
}

/* ------------------------------------------------------------------ event loop thread */

static void launch_one(loop *L, int64_t now) {
    conn *c = calloc(1, sizeof *c);
    if (!c) {  /* count it somewhere rather than lose it */
        atomic_fetch_add(&g_fail[F_CONNECT], 1);
        atomic_fetch_add(&g_failed, 1);
        atomic_fetch_sub(&g_in_flight, 1);
        return;
    }
    c->fd = -1;
    if (L->nconns == L->capconns) {
        size_t nc = L->capconns ? L->capconns * 2 : 1024;
        conn **p = realloc(L->conns, nc * sizeof *p);
        if (p) { L->conns = p; L->capconns = nc; }
    }
    if (L->nconns < L->capconns) L->conns[L->nconns++] = c;
    c->deadline = now + (int64_t)(o_handshake_timeout * 1e9);
    c->in_pend = 1;
    c->prev = L->pend_tail;
    if (L->pend_tail) L->pend_tail->next = c; else L->pend_head = c;
    L->pend_tail = c;
    if (!g_addr_ok) { fail(L, c, F_CONNECT); return; }
    int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { fail(L, c, F_CONNECT); return; }
    c->fd = fd;
    atomic_fetch_add_explicit(&g_open, 1, memory_order_relaxed);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) != 0 && errno != EINPROGRESS) {
        fail(L, c, F_CONNECT);
        return;
    }
    c->phase = P_TCP;
    c->events = EPOLLOUT;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(L->ep, EPOLL_CTL_ADD, fd, &e) != 0) fail(L, c, F_CONNECT);
}

static void arm_timer(loop *L) {
    struct itimerspec its = {{0, 0}, {0, 10000000}};
    timerfd_settime(L->tfd, 0, &its, NULL);
}

static void on_timer(loop *L) {
    uint64_t x;
    if (read(L->tfd, &x, sizeof x) < 0) { /* spurious */ }
    int64_t now = mono_ns();
    if (L->sampling && !L->frozen && L->lags && L->nlags < MAX_LAG_SAMPLES) {
        int64_t lag = now - L->last_tick - 10000000;
        L->lags[L->nlags++] = lag > 0 ? lag : 0;
    }
    L->last_tick = now;
    arm_timer(L);  /* one-shot, re-armed: a fixed delay after each tick, like NIO's repeated task */
    while (L->pend_head && L->pend_head->deadline <= now) {
        conn *c = L->pend_head;
        fail(L, c, F_TIMEOUT);
        pend_remove(L, c);
        free_bufs(c);
    }
}

static void freeze(loop *L) {
    L->frozen = 1;
    L->sampling = 0;
    size_t n = 0;
    for (size_t i = 0; i < L->nconns; i++) n += L->conns[i]->subscribed;
    L->per_conn = malloc((n ? n : 1) * sizeof *L->per_conn);
    L->nper = 0;
    if (L->per_conn)
        for (size_t i = 0; i < L->nconns; i++)
            if (L->conns[i]->subscribed) L->per_conn[L->nper++] = L->conns[i]->count;
}

static void shutdown_all(loop *L) {
    static const uint8_t bye[2] = {0x03, 0xE8};  /* 1000 */
    for (size_t i = 0; i < L->nconns; i++) {
        conn *c = L->conns[i];
        if (c->fd < 0) continue;
        c->closing_by_us = 1;
        if (c->phase == P_CONNECTING || c->phase == P_SUBSCRIBING || c->phase == P_SUBSCRIBED) {
            ws_send(L, c, 0x8, bye, 2);
            if (c->fd < 0) continue;
            c->phase = P_DRAIN;  /* the server answers with its close, then EOF */
            if (c->out_len == 0) shutdown(c->fd, SHUT_WR);
            else c->shut_after_flush = 1;
        } else if (c->phase != P_CLOSED) {
            conn_close(L, c);
            free_bufs(c);
        }
    }
}

static void *loop_main(void *arg) {
    loop *L = arg;
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(L->ep, evs, 512, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("stompsub: epoll_wait");
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            uint32_t ev = evs[i].events;
            if (tag == &L->tag_timer) {
                on_timer(L);
            } else if (tag == &L->tag_launch) {
                uint64_t cnt = 0;
                if (read(L->efd_launch, &cnt, sizeof cnt) == (ssize_t)sizeof cnt) {
                    int64_t now = mono_ns();
                    while (cnt--) launch_one(L, now);
                }
            } else if (tag == &L->tag_cmd) {
                uint64_t cnt;
                if (read(L->efd_cmd, &cnt, sizeof cnt) < 0) { /* nothing */ }
                int cmd = atomic_exchange(&L->cmd, 0);
                if (cmd & CMD_START_LAG) {
                    if (!L->lags) L->lags = malloc(MAX_LAG_SAMPLES * sizeof *L->lags);
                    L->sampling = 1;
                    L->last_tick = mono_ns();
                    arm_timer(L);
                }
                if (cmd & CMD_FREEZE) {
                    freeze(L);
                    sem_post(&L->frozen_sem);
                }
                if (cmd & CMD_SHUTDOWN) shutdown_all(L);
            } else {
                conn *c = tag;
                if (c->fd < 0) continue;
                if (c->phase == P_TCP) {
                    if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(L, c);
                } else {
                    if ((ev & EPOLLOUT) && c->out_len) on_writable(L, c);
                    if (c->fd >= 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(L, c);
                }
                if (c->fd < 0) free_bufs(c);
            }
        }
        /* --read-pause-us: after a round that did not fill the event array, pause before the
         * next epoll_wait, so deliveries arriving meanwhile are read in one round instead of each
         * waking this thread (a wake-up costs the writer's CPU too, on a shared machine). Adds at
         * most the pause to each measured latency. */
        if (o_read_pause_us > 0 && n < 512) {
            struct timespec pause = {0, o_read_pause_us * 1000};
            nanosleep(&pause, NULL);
        }
    }
}

static void loop_init(loop *L, int idx) {
    memset(L, 0, sizeof *L);
    L->idx = idx;
    L->rng = seed64() ^ ((uint64_t)idx * 0x9E3779B97F4A7C15ULL);
    if (!L->rng) L->rng = 1;
    L->rbuf = malloc(RBUF_SIZE);
    L->wcap = strlen(o_path) + strlen(o_host) + strlen(o_subprotocols) + 512;
    size_t fmax = f_subscribe_len > f_connect_len ? f_subscribe_len : f_connect_len;
    if (f_join_len > fmax) fmax = f_join_len;
    if (fmax + 14 > L->wcap) L->wcap = fmax + 14;
    if (L->wcap < 256) L->wcap = 256;
    L->wbuf = malloc(L->wcap);
    L->caplat = 1 << 16;
    L->lat = malloc(L->caplat * sizeof *L->lat);
    if (!L->lat) L->caplat = 0;
    L->ep = epoll_create1(EPOLL_CLOEXEC);
    L->efd_launch = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    L->efd_cmd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    L->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!L->rbuf || !L->wbuf || L->ep < 0 || L->efd_launch < 0 || L->efd_cmd < 0 || L->tfd < 0) {
        perror("stompsub: loop setup");
        exit(1);
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &L->tag_launch};
    epoll_ctl(L->ep, EPOLL_CTL_ADD, L->efd_launch, &e);
    e.data.ptr = &L->tag_cmd;
    epoll_ctl(L->ep, EPOLL_CTL_ADD, L->efd_cmd, &e);
    e.data.ptr = &L->tag_timer;
    epoll_ctl(L->ep, EPOLL_CTL_ADD, L->tfd, &e);
    atomic_init(&L->cmd, 0);
    sem_init(&L->frozen_sem, 0, 0);
    arm_timer(L);
}

static void loop_command(loop *L, int cmd) {
    atomic_fetch_or(&L->cmd, cmd);
    uint64_t one = 1;
    if (write(L->efd_cmd, &one, sizeof one) < 0) { /* counter overflow only */ }
}

/* ------------------------------------------------------------------ JSON (end of run only) */

typedef struct { char *p; size_t n, cap; } sbuf;

static void sb_add(sbuf *s, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(s->p ? s->p + s->n : NULL, s->p ? s->cap - s->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (s->p && s->n + (size_t)k < s->cap) { s->n += (size_t)k; return; }
        size_t nc = s->cap ? s->cap * 2 : 4096;
        while (nc < s->n + (size_t)k + 1) nc *= 2;
        char *np = realloc(s->p, nc);
        if (!np) return;
        s->p = np;
        s->cap = nc;
    }
}

static void sb_double(sbuf *s, double d) {
    if (d != d || d > 1e308 || d < -1e308) sb_add(s, "null");
    else sb_add(s, "%.15g", d);
}

static void sb_ms(sbuf *s, int64_t ns) { sb_double(s, (double)(ns / 1000) / 1000.0); }

static void sb_string(sbuf *s, const char *str) {
    sb_add(s, "\"");
    for (const unsigned char *u = (const unsigned char *)str; *u; u++) {
        if (*u == '"') sb_add(s, "\\\"");
        else if (*u == '\\') sb_add(s, "\\\\");
        else if (*u < 0x20) sb_add(s, "\\u%04x", *u);
        else sb_add(s, "%c", *u);
    }
    sb_add(s, "\"");
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* nearest rank, the rule of bench/hub/hubutil.py (round half to even) */
static int64_t pct(const int64_t *v, size_t n, double p) {
    int64_t k = round_half_even(p / 100.0 * (double)(n - 1));
    if (k < 0) k = 0;
    if ((size_t)k > n - 1) k = (int64_t)n - 1;
    return v[k];
}

static void sb_summary(sbuf *s, int64_t *v, size_t n) {
    if (n > 1) qsort(v, n, sizeof *v, cmp_i64);
    if (n == 0) { sb_add(s, "{\"count\":0}"); return; }
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += (double)v[i];
    sb_add(s, "{\"count\":%zu,\"p50_ms\":", n); sb_ms(s, pct(v, n, 50));
    sb_add(s, ",\"p90_ms\":"); sb_ms(s, pct(v, n, 90));
    sb_add(s, ",\"p99_ms\":"); sb_ms(s, pct(v, n, 99));
    sb_add(s, ",\"p999_ms\":"); sb_ms(s, pct(v, n, 99.9));
    sb_add(s, ",\"max_ms\":"); sb_ms(s, v[n - 1]);
    sb_add(s, ",\"mean_ms\":"); sb_double(s, round_away(sum / (double)n / 1e6 * 1000) / 1000);
    sb_add(s, "}");
}

static void sb_failures(sbuf *s, long not_launched, long pending) {
    sb_add(s, "{");
    for (int k = 0; k < F_KINDS; k++) sb_add(s, "\"%s\":%ld,", fail_names[k], atomic_load(&g_fail[k]));
    sb_add(s, "\"not_started\":%ld,\"pending_at_ready\":%ld}", not_launched, pending > 0 ? pending : 0);
}

typedef struct { const char *name; long count; } name_count;
static int cmp_name(const void *a, const void *b) {
    return strcmp(((const name_count *)a)->name, ((const name_count *)b)->name);
}
typedef struct { int code; long count; } code_count;
static int cmp_code(const void *a, const void *b) {
    return (((const code_count *)a)->code > ((const code_count *)b)->code) - (((const code_count *)a)->code < ((const code_count *)b)->code);
}

static void build_result(sbuf *s, long subscribed_at_ready, long failed_at_ready, long not_launched, long pending,
                         double connect_seconds, const char *stop_reason, double cpu_ready, double cpu_stop,
                         double run_seconds) {
    int K = o_event_loops;
    size_t nlat = 0, nlags = 0, nper = 0, seq_len = 0;
    long deliveries = 0, unmarked = 0, error_frames = 0, out_of_range = 0;
    int64_t first_rx = 0, last_rx = 0;
    for (int t = 0; t < K; t++) {
        loop *L = &g_loops[t];
        nlat += L->nlat; nlags += L->nlags; nper += L->nper;
        if (L->seq_cap > seq_len) seq_len = L->seq_cap;
    }
    int64_t *lat = malloc((nlat ? nlat : 1) * sizeof *lat), *lags = malloc((nlags ? nlags : 1) * sizeof *lags);
    long *per = malloc((nper ? nper : 1) * sizeof *per);
    long *seq_count = calloc(seq_len ? seq_len : 1, sizeof *seq_count);
    int64_t *seq_first = calloc(seq_len ? seq_len : 1, sizeof(int64_t)), *seq_last = calloc(seq_len ? seq_len : 1, sizeof(int64_t));
    int64_t *seq_sent = calloc(seq_len ? seq_len : 1, sizeof(int64_t));
    if (!lat || !lags || !per || !seq_count || !seq_first || !seq_last || !seq_sent) {
        fprintf(stderr, "stompsub: out of memory building the result\n");
        exit(1);
    }
    code_count codes[MAX_CODES * 64];
    int ncodes = 0;
    name_count protos[MAX_PROTOS * 64];
    int nprotos = 0;
    size_t il = 0, ig = 0, ip = 0;
    for (int t = 0; t < K; t++) {
        loop *L = &g_loops[t];
        memcpy(lat + il, L->lat, L->nlat * sizeof *lat); il += L->nlat;
        if (L->nlags) { memcpy(lags + ig, L->lags, L->nlags * sizeof *lags); ig += L->nlags; }
        if (L->nper) { memcpy(per + ip, L->per_conn, L->nper * sizeof *per); ip += L->nper; }
        deliveries += L->deliveries; unmarked += L->unmarked; error_frames += L->error_frames;
        out_of_range += L->out_of_range;
        if (L->first_rx && (!first_rx || L->first_rx < first_rx)) first_rx = L->first_rx;
        if (L->last_rx > last_rx) last_rx = L->last_rx;
        for (int k = 0; k < L->ncodes; k++) {
            int j = 0;
            while (j < ncodes && codes[j].code != L->code_key[k]) j++;
            if (j == ncodes) { codes[j].code = L->code_key[k]; codes[j].count = 0; ncodes++; }
            codes[j].count += L->code_count[k];
        }
        for (int k = 0; k < L->nprotos; k++) {
            int j = 0;
            while (j < nprotos && strcmp(protos[j].name, L->proto_key[k])) j++;
            if (j == nprotos) { protos[j].name = L->proto_key[k]; protos[j].count = 0; nprotos++; }
            protos[j].count += L->proto_count[k];
        }
        for (size_t i = 0; i < L->seq_cap; i++) {
            if (L->seq_count[i] <= 0) continue;
            seq_count[i] += L->seq_count[i];
            if (!seq_first[i] || L->seq_first[i] < seq_first[i]) seq_first[i] = L->seq_first[i];
            if (L->seq_last[i] > seq_last[i]) seq_last[i] = L->seq_last[i];
            if (!seq_sent[i]) seq_sent[i] = L->seq_sent[i];
        }
    }
    int64_t *spreads = malloc((seq_len ? seq_len : 1) * sizeof *spreads);
    int64_t *firsts = malloc((seq_len ? seq_len : 1) * sizeof *firsts);
    if (!spreads || !firsts) { fprintf(stderr, "stompsub: out of memory\n"); exit(1); }
    size_t seen = 0;
    long min_per = 0, max_per = 0;
    for (size_t i = 0; i < seq_len; i++) {
        if (!seq_count[i]) continue;
        if (!seen || seq_count[i] < min_per) min_per = seq_count[i];
        if (seq_count[i] > max_per) max_per = seq_count[i];
        spreads[seen] = seq_last[i] - seq_first[i];
        firsts[seen] = seq_first[i] - seq_sent[i];
        seen++;
    }
    long zero_delivery = 0;
    for (long i = 0; i < o_expect; i++)
        if ((size_t)i >= seq_len || seq_count[i] == 0) zero_delivery++;
    double span = last_rx > first_rx ? (double)(last_rx - first_rx) / 1e9 : 0;
    long complete = 0, pmin = 0, pmax = 0;
    for (size_t i = 0; i < nper; i++) {
        if (o_expect > 0 && per[i] >= o_expect) complete++;
        if (i == 0 || per[i] < pmin) pmin = per[i];
        if (per[i] > pmax) pmax = per[i];
    }
    qsort(codes, (size_t)ncodes, sizeof *codes, cmp_code);
    qsort(protos, (size_t)nprotos, sizeof *protos, cmp_name);

    sb_add(s, "{\"subscribed\":%ld,\"failed\":%ld,\"failures\":", subscribed_at_ready, failed_at_ready);
    sb_failures(s, not_launched, pending);
    sb_add(s, ",\"connect_seconds\":"); sb_double(s, connect_seconds);
    sb_add(s, ",\"closed_by_server\":%ld,\"server_close_codes\":{", atomic_load(&g_closed_by_server));
    for (int k = 0; k < ncodes; k++) sb_add(s, "%s\"%d\":%ld", k ? "," : "", codes[k].code, codes[k].count);
    sb_add(s, "},\"subprotocols\":{");
    for (int k = 0; k < nprotos; k++) {
        if (k) sb_add(s, ",");
        sb_string(s, protos[k].name);
        sb_add(s, ":%ld", protos[k].count);
    }
    sb_add(s, "},\"deliveries\":%ld,\"latencies_stored\":%zu,\"unmarked_messages\":%ld,\"error_frames\":%ld,"
              "\"out_of_range_sequences\":%ld,\"messages_seen\":%zu,\"min_deliveries_per_message\":%ld,"
              "\"max_deliveries_per_message\":%ld,\"expected_messages_without_delivery\":%ld,",
           deliveries, nlat, unmarked, error_frames, out_of_range, seen, seen ? min_per : 0, max_per, zero_delivery);
    sb_add(s, "\"per_subscriber\":{\"min\":%ld,\"max\":%ld,\"complete\":%ld,\"expect\":%ld},", pmin, pmax, complete, o_expect);
    sb_add(s, "\"latency\":"); sb_summary(s, lat, nlat);
    sb_add(s, ",\"first_delivery_latency\":"); sb_summary(s, firsts, seen);
    sb_add(s, ",\"spread\":"); sb_summary(s, spreads, seen);
    sb_add(s, ",\"first_rx_ns\":%lld,\"last_rx_ns\":%lld,\"delivery_span_s\":", (long long)first_rx, (long long)last_rx);
    sb_double(s, span);
    sb_add(s, ",\"deliveries_per_second\":");
    if (span > 0) sb_double(s, round_away((double)deliveries / span)); else sb_add(s, "null");
    if (nlags > 1) qsort(lags, nlags, sizeof *lags, cmp_i64);
    sb_add(s, ",\"loop_lag\":{\"samples\":%zu,\"p50_ms\":", nlags);
    if (nlags) sb_ms(s, pct(lags, nlags, 50)); else sb_add(s, "null");
    sb_add(s, ",\"p99_ms\":");
    if (nlags) sb_ms(s, pct(lags, nlags, 99)); else sb_add(s, "null");
    sb_add(s, ",\"max_ms\":");
    if (nlags) sb_ms(s, lags[nlags - 1]); else sb_add(s, "null");
    sb_add(s, "},\"cpu_s_total\":"); sb_double(s, cpu_stop);
    sb_add(s, ",\"cpu_s_after_ready\":"); sb_double(s, cpu_stop - cpu_ready);
    sb_add(s, ",\"rss_kib\":%ld,\"rss_peak_kib\":%ld,\"event_loops\":%d,\"stop_reason\":",
           proc_status_kib("VmRSS"), proc_status_kib("VmHWM"), K);
    sb_string(s, stop_reason);
    sb_add(s, ",\"run_seconds\":"); sb_double(s, run_seconds);
    sb_add(s, ",\"loadgen\":\"stompsub-c\"}");
    free(lat); free(lags); free(per); free(seq_count); free(seq_first); free(seq_last); free(seq_sent);
    free(spreads); free(firsts);
}

/* ------------------------------------------------------------------ main */

/* pre + arg + post + the STOMP frame's terminating NUL */
static char *build_frame(const char *pre, const char *arg, const char *post, size_t *len) {
    size_t a = strlen(pre), b = strlen(arg), c = strlen(post);
    char *p = malloc(a + b + c + 1);
    if (!p) exit(1);
    memcpy(p, pre, a);
    memcpy(p + a, arg, b);
    memcpy(p + a + b, post, c);
    p[a + b + c] = 0;
    *len = a + b + c + 1;
    return p;
}

int main(int argc, char **argv) {
    parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    long nofile = raise_nofile();
    if (nofile >= 0 && nofile < o_subscribers + 50)
        fprintf(stderr, "stompsub: warning: RLIMIT_NOFILE is %ld, not enough for %ld connections\n", nofile, o_subscribers);
    int64_t run_start = mono_ns();
    int64_t hard_deadline = run_start + (int64_t)(o_max_seconds * 1e9);

    f_connect = build_frame("CONNECT\naccept-version:1.2,1.1,1.0\nhost:localhost\nheart-beat:0,0\n\n", "", "",
                            &f_connect_len);
    f_subscribe = build_frame("SUBSCRIBE\nid:sub-0\ndestination:", o_destination,
                              o_receipt ? "\nack:auto\nreceipt:r-sub-0\n\n" : "\nack:auto\n\n", &f_subscribe_len);
    if (o_join)
        f_join = build_frame("SEND\ndestination:", o_join, "\ncontent-type:application/json\ncontent-length:2\n\n{}",
                             &f_join_len);

    {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        char port[16];
        snprintf(port, sizeof port, "%d", o_port);
        int rc = getaddrinfo(o_host, port, &hints, &res);
        if (rc == 0 && res && res->ai_addrlen <= sizeof g_addr) {
            memcpy(&g_addr, res->ai_addr, res->ai_addrlen);
            g_addrlen = res->ai_addrlen;
            g_addr_ok = 1;
        } else {
            fprintf(stderr, "stompsub: cannot resolve %s: %s\n", o_host, rc ? gai_strerror(rc) : "no address");
        }
        if (res) freeaddrinfo(res);
    }

    int K = o_event_loops;
    g_loops = calloc((size_t)K, sizeof *g_loops);
    if (!g_loops) return 1;
    for (int t = 0; t < K; t++) loop_init(&g_loops[t], t);
    for (int t = 0; t < K; t++) {
        if (pthread_create(&g_loops[t].th, NULL, loop_main, &g_loops[t]) != 0) {
            perror("stompsub: pthread_create");
            return 1;
        }
    }

    /* ---- connect at a bounded rate with a bounded number in flight; no retries */
    int64_t t0 = mono_ns();
    double interval = 1e9 / o_connect_rate;
    long launched = 0;
    while (launched < o_subscribers) {
        int64_t now = mono_ns();
        if (now >= hard_deadline) break;
        int64_t due = t0 + (int64_t)((double)launched * interval);
        if (now < due) {
            double d = (double)(due - now) / 1e9;
            sleep_s(d < 0.002 ? d : 0.002);
            continue;
        }
        if (atomic_load_explicit(&g_in_flight, memory_order_relaxed) >= o_max_in_flight) {
            sleep_s(0.0005);
            continue;
        }
        loop *L = &g_loops[launched % K];
        atomic_fetch_add_explicit(&g_started, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_in_flight, 1, memory_order_relaxed);
        uint64_t one = 1;
        if (write(L->efd_launch, &one, sizeof one) < 0) perror("stompsub: eventfd");
        launched++;
    }
    /* every launched connection reports within its handshake timeout; wait a little longer at most */
    int64_t settle = mono_ns() + (int64_t)((o_handshake_timeout + 5) * 1e9);
    if (settle > hard_deadline) settle = hard_deadline;
    while (atomic_load(&g_subscribed) + atomic_load(&g_failed) < launched && mono_ns() < settle) sleep_s(0.005);
    double connect_seconds = (double)(mono_ns() - t0) / 1e9;
    long not_launched = o_subscribers - launched;
    long pending = launched - atomic_load(&g_subscribed) - atomic_load(&g_failed);
    long subscribed_at_ready = atomic_load(&g_subscribed);
    long failed_at_ready = atomic_load(&g_failed) + not_launched + (pending > 0 ? pending : 0);

    sbuf s = {0};
    sb_add(&s, "READY {\"subscribed\":%ld,\"failed\":%ld,\"seconds\":", subscribed_at_ready, failed_at_ready);
    sb_double(&s, round_away(connect_seconds * 1000) / 1000);
    sb_add(&s, ",\"started\":%ld,\"failures\":", atomic_load(&g_started));
    sb_failures(&s, not_launched, pending);
    sb_add(&s, ",\"event_loops\":%d,\"nofile\":%ld,\"rss_kib\":%ld,\"loadgen\":\"stompsub-c\"}\n", K, nofile,
           proc_status_kib("VmRSS"));
    emit_line(s.p, s.n);
    s.n = 0;

    /* ---- deliveries: the loops record; this thread watches stdin and the clock */
    for (int t = 0; t < K; t++) loop_command(&g_loops[t], CMD_START_LAG);
    double cpu_ready = cpu_seconds();
    const char *stop_reason = "max-seconds";
    int complete_sent = 0;
    char line[64];
    size_t line_len = 0;
    char rb[4096];
    while (mono_ns() < hard_deadline) {
        if (o_expect > 0 && !complete_sent && subscribed_at_ready > 0 &&
            atomic_load(&g_complete) >= atomic_load(&g_subscribed)) {
            complete_sent = 1;
            sb_add(&s, "COMPLETE {\"subscribers\":%ld,\"expect\":%ld,\"seconds_since_ready\":", atomic_load(&g_complete), o_expect);
            sb_double(&s, (double)(mono_ns() - t0) / 1e9 - connect_seconds);
            sb_add(&s, "}\n");
            emit_line(s.p, s.n);
            s.n = 0;
        }
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int r = poll(&pfd, 1, 20);
        if (r < 0) {
            if (errno == EINTR) continue;
            stop_reason = "stdin-error";
            break;
        }
        if (r == 0) continue;
        ssize_t n = read(0, rb, sizeof rb);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { stop_reason = "stdin-eof"; break; }
        int stop = 0;
        for (ssize_t i = 0; i < n && !stop; i++) {
            if (rb[i] == '\n') {
                if (line_len >= 4 && !memcmp(line, "STOP", 4)) stop = 1;
                line_len = 0;
            } else if (line_len < sizeof line) {
                line[line_len++] = rb[i];
            }
        }
        if (stop) { stop_reason = "stop"; break; }
    }

    /* ---- snapshot (stops counting), report, then close everything */
    atomic_store(&g_shutting_down, 1);
    double cpu_stop = cpu_seconds();
    for (int t = 0; t < K; t++) loop_command(&g_loops[t], CMD_FREEZE);
    for (int t = 0; t < K; t++) while (sem_wait(&g_loops[t].frozen_sem) != 0 && errno == EINTR) {}
    sb_add(&s, "RESULT ");
    build_result(&s, subscribed_at_ready, failed_at_ready, not_launched, pending, connect_seconds, stop_reason,
                 cpu_ready, cpu_stop, (double)(mono_ns() - run_start) / 1e9);
    sb_add(&s, "\n");
    emit_line(s.p, s.n);

    for (int t = 0; t < K; t++) loop_command(&g_loops[t], CMD_SHUTDOWN);
    int64_t close_deadline = mono_ns() + 10000000000LL;
    while (atomic_load(&g_open) > 0 && mono_ns() < close_deadline) sleep_s(0.01);
    long left = atomic_load(&g_open);
    if (left > 0) fprintf(stderr, "stompsub: %ld connections still open after 10 s; exiting anyway\n", left);
    exit(0);
}
