/* openloop: open-loop HTTP/1.1 load at a set rate, latency counted from when each request was due.

   Requests are due on a schedule that does not wait for the server (Poisson arrivals, or evenly
   spaced), as wrk2 and DeathStarBench's generator do. A due request goes out at once on an idle
   keep-alive connection, or waits in a queue for one: its latency runs from when it was due, so a
   server that falls behind is charged for every request it delayed (no coordinated omission).

   The requests are read from a file of records (a 4-byte little-endian length, then the request's
   bytes) and sent in order, over and over. Responses are framed by Content-Length or chunked
   encoding. One thread, epoll, a timerfd armed for the next due time (timer slack 1 ns).

   Prints one JSON object: the schedule, what was answered, latency percentiles (microseconds), how
   late the generator itself sent requests that had a connection waiting, and its own CPU time.

   Usage: openloop PORT REQUESTS_FILE RATE SECONDS CONNECTIONS WARMUP_SECONDS POISSON(0|1) SEED */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_NS 5000000000LL /* after the last due time, answers are waited for this long */
#define MAX_RESPONSE (64u << 20)

typedef struct {
    const char *data;
    uint32_t len;
} Request;

typedef struct {
    int fd;
    int busy;          /* a request in flight */
    int listed;        /* on the idle stack */
    int64_t due;       /* when the request in flight was due */
    int measured;      /* it was due inside the measured window */
    char *buf;         /* bytes received and not yet consumed */
    size_t used, cap;
    const char *out;   /* the part of the request not yet written */
    size_t out_left;
} Conn;

typedef struct {
    int64_t *due;      /* ring of due times waiting for a connection */
    size_t head, count, cap;
} Queue;

static struct {
    Request *requests;
    size_t nrequests, next_request;
    Conn *conns;
    Conn **idle;       /* connections with nothing in flight, last freed on top */
    int nconns, nidle, in_flight, epfd, port;
    Queue queue;
    float *lat_us;     /* latencies of measured, answered requests */
    size_t nlat, caplat;
    float *lag_us;     /* due -> written, for every measured request */
    size_t nlag, caplag;
    int64_t window_start, window_end, last_answer;
    long long scheduled, ok, ok_in_window, non2xx, transport_errors, reconnects, timed_out, max_queue;
    long long statuses[6];
} g;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "openloop: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void push(float **arr, size_t *n, size_t *cap, float v) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 65536;
        *arr = realloc(*arr, *cap * sizeof(float));
        if (!*arr) die("realloc");
    }
    (*arr)[(*n)++] = v;
}

static void queue_push(int64_t due) {
    Queue *q = &g.queue;
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 4096;
        int64_t *due_times = malloc(cap * sizeof(int64_t));
        if (!due_times) die("malloc");
        for (size_t i = 0; i < q->count; i++) due_times[i] = q->due[(q->head + i) % q->cap];
        free(q->due);
        q->due = due_times, q->cap = cap, q->head = 0;
    }
    q->due[(q->head + q->count++) % q->cap] = due;
    if ((long long)q->count > g.max_queue) g.max_queue = (long long)q->count;
}

static int64_t queue_pop(void) {
    Queue *q = &g.queue;
    int64_t due = q->due[q->head];
    q->head = (q->head + 1) % q->cap, q->count--;
    return due;
}

static void watch(Conn *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(g.epfd, op, c->fd, &ev) < 0) die("epoll_ctl");
}

static void open_conn(Conn *c) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    c->busy = 0, c->used = 0, c->out_left = 0;
    watch(c, EPOLLIN, EPOLL_CTL_ADD);
}

/* Write what is left of the request; the rest when the socket can take it. */
static int flush_out(Conn *c) {
    while (c->out_left) {
        ssize_t n = send(c->fd, c->out, c->out_left, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN) {
                watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
                return 0;
            }
            return -1;
        }
        c->out += n, c->out_left -= (size_t)n;
    }
    return 0;
}

static void reconnect(Conn *c);

/* The request due at `due` written on c. -1: the connection failed (the caller reconnects it). */
static int send_due(Conn *c, int64_t due, int64_t now) {
    Request *r = &g.requests[g.next_request];
    g.next_request = (g.next_request + 1) % g.nrequests;
    c->busy = 1, c->due = due;
    g.in_flight++;
    c->measured = due >= g.window_start && due < g.window_end;
    c->out = r->data, c->out_left = r->len;
    if (c->measured && now - due >= 0) push(&g.lag_us, &g.nlag, &g.caplag, (float)(now - due) / 1000.0f);
    return flush_out(c);
}

/* c has nothing in flight: the oldest waiting request goes on it, or it waits on the idle stack. */
static int idle(Conn *c, int64_t now) {
    if (g.queue.count) return send_due(c, queue_pop(), now);
    if (!c->listed) c->listed = 1, g.idle[g.nidle++] = c;
    return 0;
}

static Conn *take_idle(void) {
    if (!g.nidle) return NULL;
    Conn *c = g.idle[--g.nidle];
    c->listed = 0;
    return c;
}

static void unlist(Conn *c) {
    for (int i = 0; c->listed && i < g.nidle; i++) {
        if (g.idle[i] == c) {
            g.idle[i] = g.idle[--g.nidle];
            c->listed = 0;
        }
    }
}

/* c's connection replaced by a new one (the server closed it, or it failed): a request in flight
   on it got no answer. The new one takes the oldest waiting request, or waits idle. */
static void reconnect(Conn *c) {
    unlist(c);
    if (c->busy) {
        if (c->measured) g.transport_errors++;
        c->busy = 0, g.in_flight--;
    }
    epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    g.reconnects++;
    open_conn(c);
    if (idle(c, now_ns()) < 0) die("sending on a new connection");
}

static void answered(Conn *c, int status, int64_t now) {
    g.last_answer = now;
    if (status / 100 == 2 && now >= g.window_start && now < g.window_end) g.ok_in_window++;
    if (c->measured) {
        int klass = status / 100;
        g.statuses[klass >= 1 && klass <= 5 ? klass : 0]++;
        if (klass == 2) {
            g.ok++;
            push(&g.lat_us, &g.nlat, &g.caplat, (float)(now - c->due) / 1000.0f);
        } else {
            g.non2xx++;
        }
    }
    c->busy = 0, g.in_flight--;
}

/* The value of a header in head (which ends at its blank line), or NULL. */
static const char *header(const char *head, size_t len, const char *name) {
    size_t n = strlen(name);
    for (const char *p = head; p + n + 2 < head + len; p++) {
        if (p[0] == '\n' && strncasecmp(p + 1, name, n) == 0 && p[1 + n] == ':') {
            p += n + 2;
            while (*p == ' ' || *p == '\t') p++;
            return p;
        }
    }
    return NULL;
}

/* Bytes a chunked body takes from body (its trailer included), 0 if not all here, -1 if bad. */
static long long chunked_length(const char *body, size_t avail) {
    size_t at = 0;
    for (;;) {
        const char *eol = memmem(body + at, avail - at, "\r\n", 2);
        if (!eol) return 0;
        char *end;
        unsigned long long size = strtoull(body + at, &end, 16);
        if (end == body + at) return -1;
        at = (size_t)(eol - body) + 2;
        if (size == 0) {
            const char *trailer_end = at + 2 <= avail && memcmp(body + at, "\r\n", 2) == 0
                                          ? body + at : memmem(body + at, avail - at, "\r\n\r\n", 4);
            if (!trailer_end) return 0;
            return (long long)(trailer_end - body) + (trailer_end == body + at ? 2 : 4);
        }
        if (at + size + 2 > avail) return 0;
        at += size + 2;
    }
}

/* Consume every whole response in c's buffer. -1: the bytes are not HTTP (or a write failed),
   -2: a response said the connection closes; either way the caller replaces the connection. */
static int consume(Conn *c, int64_t now) {
    size_t at = 0;
    while (c->busy && c->used - at >= 12) {
        char *start = c->buf + at;
        char *blank = memmem(start, c->used - at, "\r\n\r\n", 4);
        if (!blank) break;
        if (memcmp(start, "HTTP/1.", 7) != 0) return -1;
        size_t head_len = (size_t)(blank - start) + 4;
        long long body_len = 0;
        const char *te = header(start, head_len, "transfer-encoding");
        const char *cl = header(start, head_len, "content-length");
        if (te && strncasecmp(te, "chunked", 7) == 0) {
            body_len = chunked_length(start + head_len, c->used - at - head_len);
            if (body_len < 0) return -1;
            if (body_len == 0) break;
        } else if (cl) {
            body_len = strtoll(cl, NULL, 10);
        }
        if (c->used - at < head_len + (size_t)body_len) break;
        const char *conn_header = header(start, head_len, "connection");
        int closes = conn_header ? strncasecmp(conn_header, "close", 5) == 0 : start[7] == '0'; /* HTTP/1.0 */
        answered(c, atoi(start + 9), now);
        at += head_len + (size_t)body_len;
        if (closes) return -2; /* the server closes it: the next request goes on a new one */
        if (idle(c, now) < 0) return -1; /* what is left of the buffer goes with the connection */
    }
    memmove(c->buf, c->buf + at, c->used - at);
    c->used -= at;
    return 0;
}

static void readable(Conn *c, int64_t now) {
    for (;;) {
        if (c->cap - c->used < 16384) {
            if (c->cap >= MAX_RESPONSE) {
                reconnect(c);
                return;
            }
            c->cap = c->cap ? c->cap * 2 : 65536;
            c->buf = realloc(c->buf, c->cap);
            if (!c->buf) die("realloc");
        }
        size_t space = c->cap - c->used;
        ssize_t n = recv(c->fd, c->buf + c->used, space, MSG_DONTWAIT);
        if (n > 0) {
            c->used += (size_t)n;
            if ((size_t)n < space) break; /* drained (level-triggered epoll says if more comes) */
            continue;
        }
        if (n < 0 && errno == EAGAIN) break;
        reconnect(c); /* closed, or reset: the request in flight got no answer */
        return;
    }
    if (consume(c, now) < 0) reconnect(c);
}

static void load_requests(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *all = malloc((size_t)size + 1);
    if (!all || fread(all, 1, (size_t)size, f) != (size_t)size) die("reading the requests");
    fclose(f);
    size_t cap = 1024;
    g.requests = malloc(cap * sizeof(Request));
    for (long at = 0; at + 4 <= size;) {
        uint32_t len = (uint32_t)(unsigned char)all[at] | (uint32_t)(unsigned char)all[at + 1] << 8 |
                       (uint32_t)(unsigned char)all[at + 2] << 16 | (uint32_t)(unsigned char)all[at + 3] << 24;
        if (at + 4 + (long)len > size) break;
        if (g.nrequests == cap) g.requests = realloc(g.requests, (cap *= 2) * sizeof(Request));
        g.requests[g.nrequests++] = (Request){all + at + 4, len};
        at += 4 + (long)len;
    }
    if (!g.nrequests) {
        fprintf(stderr, "openloop: no requests in %s\n", path);
        exit(2);
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double pct(float *sorted, size_t n, double p) {
    if (!n) return -1;
    size_t i = (size_t)((double)n * p / 100.0);
    return sorted[i < n ? i : n - 1];
}

static double cpu_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

static void report(double rate, double seconds, double warmup, int conns, int poisson) {
    qsort(g.lat_us, g.nlat, sizeof(float), cmp_float);
    qsort(g.lag_us, g.nlag, sizeof(float), cmp_float);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double window = (double)(g.window_end - g.window_start) / 1e9;
    double answered_until = (double)(g.last_answer - g.window_start) / 1e9;
    printf("{\"target_rps\": %.3f, \"seconds\": %.3f, \"warmup_s\": %.3f, \"connections\": %d, "
           "\"arrivals\": \"%s\", \"requests_in_file\": %zu, \"scheduled\": %lld, \"offered_rps\": %.3f, "
           "\"ok\": %lld, \"achieved_rps\": %.3f, \"achieved_share\": %.5f, \"last_answer_s\": %.3f, "
           "\"non_2xx\": %lld, \"transport_errors\": %lld, \"timed_out\": %lld, \"reconnects\": %lld, "
           "\"statuses\": {\"1xx\": %lld, \"2xx\": %lld, \"3xx\": %lld, \"4xx\": %lld, \"5xx\": %lld, "
           "\"other\": %lld}, \"max_queue\": %lld, ",
           rate, seconds, warmup, conns, poisson ? "poisson" : "uniform", g.nrequests, g.scheduled,
           (double)g.scheduled / window, g.ok, (double)g.ok_in_window / window,
           g.scheduled ? (double)g.ok_in_window / (double)g.scheduled : 0.0, answered_until, g.non2xx, g.transport_errors,
           g.timed_out, g.reconnects, g.statuses[1], g.statuses[2], g.statuses[3], g.statuses[4], g.statuses[5],
           g.statuses[0], g.max_queue);
    printf("\"latency_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f}, ",
           pct(g.lat_us, g.nlat, 50), pct(g.lat_us, g.nlat, 90), pct(g.lat_us, g.nlat, 99),
           pct(g.lat_us, g.nlat, 99.9), g.nlat ? g.lat_us[g.nlat - 1] : -1.0);
    printf("\"send_lag_us\": {\"count\": %zu, \"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f}, ", g.nlag,
           pct(g.lag_us, g.nlag, 50), pct(g.lag_us, g.nlag, 99), g.nlag ? g.lag_us[g.nlag - 1] : -1.0);
    printf("\"cpu_s\": {\"user\": %.3f, \"system\": %.3f}}\n", cpu_s(ru.ru_utime), cpu_s(ru.ru_stime));
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: openloop PORT REQUESTS_FILE RATE SECONDS CONNECTIONS WARMUP POISSON SEED\n");
        return 2;
    }
    g.port = atoi(argv[1]);
    double rate = atof(argv[3]), seconds = atof(argv[4]), warmup = atof(argv[6]);
    int conns = atoi(argv[5]), poisson = atoi(argv[7]);
    srand48(atol(argv[8]));
    if (rate <= 0 || seconds <= 0 || conns <= 0 || warmup < 0) {
        fprintf(stderr, "openloop: RATE, SECONDS and CONNECTIONS must be positive, WARMUP not negative\n");
        return 2;
    }
    load_requests(argv[2]);
    prctl(PR_SET_TIMERSLACK, 1UL);
    g.epfd = epoll_create1(0);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (g.epfd < 0 || tfd < 0) die("epoll/timerfd");
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(g.epfd, EPOLL_CTL_ADD, tfd, &tev);
    g.conns = calloc((size_t)conns, sizeof(Conn));
    g.idle = calloc((size_t)conns, sizeof(Conn *));
    g.nconns = conns;
    for (int i = 0; i < conns; i++) {
        open_conn(&g.conns[i]);
        idle(&g.conns[i], 0);
    }

    int64_t start = now_ns(), next_due = start;
    g.window_start = start + (int64_t)(warmup * 1e9);
    g.window_end = g.window_start + (int64_t)(seconds * 1e9);
    int64_t drain_until = g.window_end + DRAIN_NS;
    g.last_answer = start;
    struct epoll_event events[256];
    int64_t armed = -1;
    for (;;) {
        int64_t now = now_ns();
        while (next_due <= now && next_due < g.window_end) {
            if (next_due >= g.window_start) g.scheduled++;
            Conn *free_conn = g.queue.count ? NULL : take_idle();
            if (!free_conn) queue_push(next_due);
            else if (send_due(free_conn, next_due, now) < 0) reconnect(free_conn);
            next_due += poisson ? (int64_t)(-log(1.0 - drand48()) / rate * 1e9) : (int64_t)(1e9 / rate);
        }
        if (next_due >= g.window_end && !g.in_flight && !g.queue.count) break;
        if (now >= drain_until) {
            g.timed_out = g.in_flight + (long long)g.queue.count;
            break;
        }
        int64_t wake = next_due < g.window_end ? next_due : drain_until;
        /* Re-armed only when it would not fire by then anyway: one timerfd_settime per firing. */
        if (!(armed > now && armed <= wake) && wake != armed) {
            struct itimerspec its = {.it_value = {.tv_sec = wake / 1000000000LL, .tv_nsec = wake % 1000000000LL}};
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
            armed = wake;
        }
        int n = epoll_wait(g.epfd, events, 256, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        now = now_ns();
        for (int i = 0; i < n; i++) {
            Conn *c = events[i].data.ptr;
            if (!c) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("timerfd");
                continue;
            }
            if (events[i].events & EPOLLOUT) {
                watch(c, EPOLLIN, EPOLL_CTL_MOD);
                if (flush_out(c) < 0) {
                    reconnect(c);
                    continue;
                }
            }
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readable(c, now);
        }
    }
    report(rate, seconds, warmup, conns, poisson);
    return 0;
}
