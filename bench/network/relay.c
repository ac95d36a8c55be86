/* relay: a TCP relay that holds every chunk for a set one-way delay before passing it on, in each
   direction. It stands in for a network link's latency where the kernel has no netem qdisc: the
   round trip through it is twice the delay (plus the relay's own microseconds, measured apart).

   Usage: relay DELAY_US LISTEN_HOST:PORT=UPSTREAM_HOST:PORT [...]

   One thread, epoll, a timerfd armed SPIN_NS before the earliest chunk due (timer slack 1 ns),
   then polling until it is due. Bytes keep
   their order per direction; a direction holding more than HELD_LIMIT bytes stops reading its
   source until it drains, so a stalled receiver cannot make the relay grow without bound. A
   half-close passes on once what came before it has. Prints "ready" once every listener is bound. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536
#define HELD_LIMIT (4 << 20)
#define MAX_LISTENERS 16
#define MAX_PAIRS 4096
#define SPIN_NS 250000LL

typedef struct Chunk {
    struct Chunk *next;
    int64_t due;
    size_t len, sent;
    char data[];
} Chunk;

typedef struct Pair Pair;

typedef struct {
    int from, to;      /* read from, write to */
    Chunk *head, *tail;
    size_t held;
    int eof;           /* the source half-closed: pass it on once drained */
    int shut;          /* passed on */
    int blocked;       /* the receiver took no more: wait for it to be writable */
    Pair *pair;
} Direction;

struct Pair {
    int fds[2];        /* client, upstream */
    Direction dir[2];  /* client -> upstream, upstream -> client */
    uint32_t registered[2];  /* the events each fd waits for now */
    int used;
};

typedef struct {
    int fd;
    struct sockaddr_in upstream;
} Listener;

typedef struct {
    int kind;          /* 0 listener, 1 connection, 2 timer */
    void *ptr;
    int side;
} Tag;

static int64_t delay_ns;
static int epfd, tfd;
static Listener listeners[MAX_LISTENERS];
static Tag listener_tags[MAX_LISTENERS];
static Pair pairs[MAX_PAIRS];
static Tag pair_tags[MAX_PAIRS][2];

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "relay: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int parse_addr(const char *text, struct sockaddr_in *out) {
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host) return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = 0;
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

static void set_events(int fd, Tag *tag, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0) die("epoll_ctl mod");
}

/* What a connection's fd should wait for: input unless its direction out is over the limit (or
   ended), output while the direction into it has bytes due that did not fit. */
static void update_events(Pair *p, int side) {
    Direction *out = &p->dir[side], *in = &p->dir[1 - side];
    uint32_t events = 0;
    if (!out->eof && out->held < HELD_LIMIT) events |= EPOLLIN;
    if (in->blocked) events |= EPOLLOUT;
    if (events == p->registered[side]) return;
    p->registered[side] = events;
    set_events(p->fds[side], &pair_tags[p - pairs][side], events);
}

static void close_pair(Pair *p) {
    for (int side = 0; side < 2; side++) {
        Chunk *c = p->dir[side].head;
        while (c) {
            Chunk *next = c->next;
            free(c);
            c = next;
        }
        close(p->fds[side]);
    }
    memset(p, 0, sizeof *p);
}

/* Write what is due in a direction. -1: its receiver is gone (the pair is closed). */
static int flush(Direction *d, int64_t now) {
    Pair *p = d->pair;
    int closing = !d->head && d->eof && !d->shut;
    if (!closing && !(d->head && d->head->due <= now)) return 0; /* nothing due yet */
    d->blocked = 0;
    while (d->head && d->head->due <= now) {
        Chunk *c = d->head;
        ssize_t n = send(d->to, c->data + c->sent, c->len - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN) {
                d->blocked = 1;
                break;
            }
            close_pair(p);
            return -1;
        }
        c->sent += (size_t)n, d->held -= (size_t)n;
        if (c->sent < c->len) {
            d->blocked = 1;
            break;
        }
        d->head = c->next;
        if (!d->head) d->tail = NULL;
        free(c);
    }
    if (!d->head && d->eof && !d->shut) {
        shutdown(d->to, SHUT_WR);
        d->shut = 1;
    }
    if (p->dir[0].shut && p->dir[1].shut) {
        close_pair(p);
        return -1;
    }
    update_events(p, 0);
    update_events(p, 1);
    return 0;
}

static void readable(Pair *p, int side, int64_t now) {
    Direction *d = &p->dir[side];
    while (d->held < HELD_LIMIT) {
        Chunk *c = malloc(sizeof(Chunk) + CHUNK);
        if (!c) die("malloc");
        ssize_t n = recv(d->from, c->data, CHUNK, MSG_DONTWAIT);
        if (n <= 0) {
            free(c);
            if (n < 0 && errno == EAGAIN) break;
            if (n < 0) { /* reset: nothing more will pass either way */
                close_pair(p);
                return;
            }
            d->eof = 1;
            break;
        }
        c->next = NULL, c->due = now + delay_ns, c->len = (size_t)n, c->sent = 0;
        if (d->tail) d->tail->next = c;
        else d->head = c;
        d->tail = c, d->held += (size_t)n;
        if ((size_t)n < CHUNK) break;
    }
    if (flush(d, now) == 0) update_events(p, side);
}

static void accept_one(Listener *l) {
    int client = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK);
    if (client < 0) return;
    int upstream = socket(AF_INET, SOCK_STREAM, 0);
    if (upstream < 0 || connect(upstream, (struct sockaddr *)&l->upstream, sizeof l->upstream) < 0) {
        close(client);
        if (upstream >= 0) close(upstream);
        return;
    }
    int i = 0;
    while (i < MAX_PAIRS && pairs[i].used) i++;
    if (i == MAX_PAIRS) {
        close(client), close(upstream);
        return;
    }
    Pair *p = &pairs[i];
    int one = 1;
    p->used = 1, p->fds[0] = client, p->fds[1] = upstream;
    for (int side = 0; side < 2; side++) {
        setsockopt(p->fds[side], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(p->fds[side], F_SETFL, fcntl(p->fds[side], F_GETFL) | O_NONBLOCK);
        p->dir[side] = (Direction){.from = p->fds[side], .to = p->fds[1 - side], .pair = p};
        pair_tags[i][side] = (Tag){.kind = 1, .ptr = p, .side = side};
        p->registered[side] = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &pair_tags[i][side]};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, p->fds[side], &ev) < 0) die("epoll_ctl add");
    }
}

static int64_t earliest_due(void) {
    int64_t best = -1;
    for (int i = 0; i < MAX_PAIRS; i++) {
        if (!pairs[i].used) continue;
        for (int side = 0; side < 2; side++) {
            Chunk *c = pairs[i].dir[side].head;
            if (c && !pairs[i].dir[side].blocked && (best < 0 || c->due < best)) best = c->due;
        }
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc - 2 > MAX_LISTENERS) {
        fprintf(stderr, "usage: relay DELAY_US LISTEN_HOST:PORT=UPSTREAM_HOST:PORT [...]\n");
        return 2;
    }
    delay_ns = atoll(argv[1]) * 1000LL;
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL);
    epfd = epoll_create1(0);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (epfd < 0 || tfd < 0) die("epoll/timerfd");
    static Tag timer_tag = {.kind = 2};
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = &timer_tag};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);
    for (int i = 2; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        struct sockaddr_in bind_addr;
        if (!eq) die("a pair is LISTEN=UPSTREAM");
        *eq = 0;
        Listener *l = &listeners[i - 2];
        if (parse_addr(argv[i], &bind_addr) < 0 || parse_addr(eq + 1, &l->upstream) < 0) die("bad address");
        l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(l->fd, (struct sockaddr *)&bind_addr, sizeof bind_addr) < 0) die("bind");
        if (listen(l->fd, 1024) < 0) die("listen");
        listener_tags[i - 2] = (Tag){.kind = 0, .ptr = l};
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tags[i - 2]};
        epoll_ctl(epfd, EPOLL_CTL_ADD, l->fd, &ev);
    }
    printf("ready\n");
    fflush(stdout);
    struct epoll_event events[256];
    int64_t armed = -1;
    for (;;) {
        /* A timer wakes this process up to a few hundred µs late on a virtual machine: it is set
           SPIN_NS early, and the rest is polled for, yielding the CPU between polls. */
        int64_t due = earliest_due(), before = now_ns();
        int timeout = -1;
        if (due >= 0 && due - before <= SPIN_NS) {
            timeout = 0;
        } else if (due >= 0 && due - SPIN_NS != armed) {
            int64_t at = due - SPIN_NS;
            struct itimerspec its = {.it_value = {.tv_sec = at / 1000000000LL, .tv_nsec = at % 1000000000LL}};
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
            armed = at;
        }
        int n = epoll_wait(epfd, events, 256, timeout);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        if (n <= 0 && timeout == 0) sched_yield();
        int64_t now = now_ns();
        if (due >= 0 && due <= now) {
            for (int k = 0; k < MAX_PAIRS; k++)
                for (int side = 0; side < 2 && pairs[k].used; side++) flush(&pairs[k].dir[side], now);
        }
        for (int i = 0; i < n; i++) {
            Tag *tag = events[i].data.ptr;
            if (tag->kind == 0) {
                accept_one(tag->ptr);
            } else if (tag->kind == 2) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("timerfd");
                armed = -1;
            } else {
                Pair *p = tag->ptr;
                if (!p->used) continue;
                if (events[i].events & EPOLLOUT && flush(&p->dir[1 - tag->side], now) < 0) continue;
                if (p->used && events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readable(p, tag->side, now);
            }
        }
    }
}
