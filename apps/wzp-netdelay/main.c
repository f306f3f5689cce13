/*
 * wzp-netdelay: a userspace delay line for the NAT lab.
 *
 * The lab's kernel has no netem, so delay is done here: an iptables NFQUEUE
 * rule on an end host's UDP egress hands each packet to this program, which
 * holds it for the configured delay (plus optional jitter), keeps FIFO order
 * (jitter never reorders), optionally drops a fraction, and then accepts it
 * back into the stack. Only verdicts travel back to the kernel; the payload is
 * never copied.
 *
 * --reorder-ms R adds a uniform 0..R ms to each packet's hold outside the FIFO
 * rule, so packets overtake each other (reordering jitter). --ge-loss-pct P
 * --ge-burst B drops packets in bursts (Gilbert-Elliott: a good state that
 * loses nothing and a bad state that loses everything; bursts last B packets
 * on average and P % of packets are lost in the long run).
 *
 *   wzp-netdelay --delay-ms D [--queue N] [--jitter-ms J] [--loss-pct P]
 *                [--reorder-ms R] [--ge-loss-pct P --ge-burst B]
 *                [--max-held K] [--pidfile FILE]
 *
 * Runs until SIGTERM/SIGINT, then releases whatever it still holds and prints
 * its counters on stderr. The pidfile is written once the queue is bound, so a
 * launcher can wait for it before installing the NFQUEUE rule.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#include "common/rand.h"
#include "common/time.h"

struct held {
    uint32_t id;
    uint64_t order; /* arrival order: ties on `due` leave first in, first out */
    wzp_ts due;
};

/* Held packets form a binary min-heap on (due, order). */
struct delay_line {
    struct nfq_q_handle *qh;
    wzp_ts delay, jitter, reorder;
    uint32_t loss_ppm;     /* drop probability, parts per million */
    uint32_t ge_enter_ppm; /* Gilbert-Elliott: good -> bad per packet */
    uint32_t ge_leave_ppm; /* bad -> good per packet */
    int ge_bad;
    struct held *heap;
    size_t cap, len;
    uint64_t order;
    wzp_ts last_due; /* FIFO: no packet leaves before the one queued ahead of it */
    uint64_t seen, passed, lost, ge_lost, overflow, enobufs;
};

static int before(const struct held *a, const struct held *b)
{
    return a->due < b->due || (a->due == b->due && a->order < b->order);
}

static void heap_push(struct delay_line *dl, struct held h)
{
    size_t i = dl->len++;
    while (i > 0 && before(&h, &dl->heap[(i - 1) / 2])) {
        dl->heap[i] = dl->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    dl->heap[i] = h;
}

static struct held heap_pop(struct delay_line *dl)
{
    struct held top = dl->heap[0], last = dl->heap[--dl->len];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= dl->len)
            break;
        if (c + 1 < dl->len && before(&dl->heap[c + 1], &dl->heap[c]))
            c++;
        if (!before(&dl->heap[c], &last))
            break;
        dl->heap[i] = dl->heap[c];
        i = c;
    }
    if (dl->len)
        dl->heap[i] = last;
    return top;
}

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static wzp_ts now_ts(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return WZP_SEC(ts.tv_sec) + (wzp_ts)ts.tv_nsec;
}

static uint64_t rand_below(uint64_t bound)
{
    uint64_t r;
    wzp_random_nonce(&r, sizeof r);
    return bound ? r % bound : 0;
}

static void verdict(struct delay_line *dl, uint32_t id, uint32_t v)
{
    if (nfq_set_verdict(dl->qh, id, v, 0, NULL) < 0)
        fprintf(stderr, "wzp-netdelay: verdict for packet %u failed: %s\n", id, strerror(errno));
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *arg)
{
    struct delay_line *dl = arg;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    (void)qh;
    (void)msg;
    if (!ph)
        return 0;
    uint32_t id = ntohl(ph->packet_id);
    dl->seen++;
    if (dl->loss_ppm && rand_below(1000000) < dl->loss_ppm) {
        dl->lost++;
        verdict(dl, id, NF_DROP);
        return 0;
    }
    if (dl->ge_enter_ppm) {
        if (rand_below(1000000) < (dl->ge_bad ? dl->ge_leave_ppm : dl->ge_enter_ppm))
            dl->ge_bad = !dl->ge_bad;
        if (dl->ge_bad) {
            dl->ge_lost++;
            verdict(dl, id, NF_DROP);
            return 0;
        }
    }
    if (dl->len == dl->cap) {
        /* A full delay line behaves like a full bottleneck queue: tail drop. */
        dl->overflow++;
        verdict(dl, id, NF_DROP);
        return 0;
    }
    wzp_ts now = now_ts();
    wzp_ts due = now + dl->delay;
    if (dl->jitter) {
        wzp_ts j = rand_below(2 * dl->jitter + 1); /* uniform in [-J, +J] */
        due = due + j >= dl->jitter ? due + j - dl->jitter : now;
    }
    if (due < dl->last_due)
        due = dl->last_due;
    dl->last_due = due;
    if (dl->reorder)
        due += rand_below(dl->reorder + 1); /* outside the FIFO rule: may overtake */
    heap_push(dl, (struct held){.id = id, .order = dl->order++, .due = due});
    return 0;
}

/* Accepts every held packet whose time has come (all of them when flushing). */
static void release_due(struct delay_line *dl, int flush)
{
    wzp_ts now = now_ts();
    while (dl->len && (flush || dl->heap[0].due <= now)) {
        verdict(dl, heap_pop(dl).id, NF_ACCEPT);
        dl->passed++;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: wzp-netdelay --delay-ms D [--queue N] [--jitter-ms J] [--loss-pct P]\n"
               "                    [--reorder-ms R] [--ge-loss-pct P --ge-burst B]\n"
               "                    [--max-held K] [--pidfile FILE]\n");
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'q'},
        {"delay-ms", required_argument, NULL, 'd'},
        {"jitter-ms", required_argument, NULL, 'j'},
        {"loss-pct", required_argument, NULL, 'l'},
        {"max-held", required_argument, NULL, 'm'},
        {"reorder-ms", required_argument, NULL, 'r'},
        {"ge-loss-pct", required_argument, NULL, 'g'},
        {"ge-burst", required_argument, NULL, 'b'},
        {"pidfile", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    double queue = 0, delay_ms = -1, jitter_ms = 0, loss_pct = 0, max_held = 8192;
    double reorder_ms = 0, ge_loss = 0, ge_burst = 0;
    const char *pidfile = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "q:d:j:l:m:p:r:g:b:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'q':
            bad = parse_num(optarg, 0, 65535, &queue);
            break;
        case 'd':
            bad = parse_num(optarg, 0, 60000, &delay_ms);
            break;
        case 'j':
            bad = parse_num(optarg, 0, 60000, &jitter_ms);
            break;
        case 'l':
            bad = parse_num(optarg, 0, 100, &loss_pct);
            break;
        case 'm':
            bad = parse_num(optarg, 1, 1 << 20, &max_held);
            break;
        case 'p':
            pidfile = optarg;
            break;
        case 'r':
            bad = parse_num(optarg, 0, 60000, &reorder_ms);
            break;
        case 'g':
            bad = parse_num(optarg, 0, 99, &ge_loss);
            break;
        case 'b':
            bad = parse_num(optarg, 1, 10000, &ge_burst);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "wzp-netdelay: bad value for -%c: %s\n", c, optarg);
            return 2;
        }
    }
    if (optind != argc || delay_ms < 0 || (ge_loss > 0) != (ge_burst > 0)) {
        usage(stderr);
        return 2;
    }

    struct delay_line dl = {
        .delay = (wzp_ts)(delay_ms * 1e6),
        .jitter = (wzp_ts)(jitter_ms * 1e6),
        .loss_ppm = (uint32_t)(loss_pct * 1e4),
        .reorder = (wzp_ts)(reorder_ms * 1e6),
        .cap = (size_t)max_held,
    };
    if (ge_loss > 0) {
        /* Bad lasts 1/leave packets; the long-run share in bad is enter/(enter+leave). */
        double leave = 1.0 / ge_burst, p = ge_loss / 100.0;
        dl.ge_leave_ppm = (uint32_t)(leave * 1e6);
        dl.ge_enter_ppm = (uint32_t)(p * leave / (1.0 - p) * 1e6);
        if (!dl.ge_enter_ppm)
            dl.ge_enter_ppm = 1;
    }
    dl.heap = calloc(dl.cap, sizeof *dl.heap);
    if (!dl.heap) {
        fprintf(stderr, "wzp-netdelay: out of memory\n");
        return 1;
    }

    struct nfq_handle *h = nfq_open();
    if (!h) {
        fprintf(stderr, "wzp-netdelay: nfq_open: %s\n", strerror(errno));
        free(dl.heap);
        return 1;
    }
    int rc = 1;
    dl.qh = nfq_create_queue(h, (uint16_t)queue, on_packet, &dl);
    if (!dl.qh) {
        fprintf(stderr, "wzp-netdelay: cannot bind queue %u: %s\n", (unsigned)queue,
                strerror(errno));
        goto out_close;
    }
    /* Metadata only: we never look at the payload, only hand back a verdict. */
    if (nfq_set_mode(dl.qh, NFQNL_COPY_META, 0) < 0 ||
        nfq_set_queue_maxlen(dl.qh, (uint32_t)dl.cap) < 0) {
        fprintf(stderr, "wzp-netdelay: queue setup failed: %s\n", strerror(errno));
        goto out_queue;
    }
    nfnl_rcvbufsiz(nfq_nfnlh(h), 4u << 20);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    if (pidfile) {
        FILE *f = fopen(pidfile, "w");
        if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
            fprintf(stderr, "wzp-netdelay: cannot write %s\n", pidfile);
            goto out_queue;
        }
    }

    int fd = nfq_fd(h);
    char buf[65536] __attribute__((aligned));
    while (!stop_requested) {
        int timeout_ms = -1;
        if (dl.len) {
            wzp_ts now = now_ts(), due = dl.heap[0].due;
            timeout_ms = due > now ? (int)((due - now + WZP_MS(1) - 1) / WZP_MS(1)) : 0;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = poll(&pfd, 1, timeout_ms);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "wzp-netdelay: poll: %s\n", strerror(errno));
            break;
        }
        if (n > 0) {
            for (;;) {
                ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (r < 0) {
                    if (errno == ENOBUFS) {
                        /* The kernel dropped messages it could not deliver: count, go on. */
                        dl.enobufs++;
                        continue;
                    }
                    break;
                }
                nfq_handle_packet(h, buf, (int)r);
            }
        }
        release_due(&dl, 0);
    }
    release_due(&dl, 1);
    fprintf(stderr,
            "wzp-netdelay: seen %llu passed %llu lost %llu burst-lost %llu overflow %llu enobufs "
            "%llu\n",
            (unsigned long long)dl.seen, (unsigned long long)dl.passed, (unsigned long long)dl.lost,
            (unsigned long long)dl.ge_lost, (unsigned long long)dl.overflow,
            (unsigned long long)dl.enobufs);
    rc = 0;
out_queue:
    nfq_destroy_queue(dl.qh);
out_close:
    nfq_close(h);
    free(dl.heap);
    if (pidfile && rc == 0)
        unlink(pidfile);
    return rc;
}
