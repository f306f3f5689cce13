/*
 * The client's NAT behaviour, measured against its relay once registered
 * (ice/natcheck.h: mapping, filtering, port allocation), for the CallParams
 * of its calls: the peers pick birthday probing or port prediction from both
 * sides' (ice/birthday.h). Sans-I/O, driven by the core on its sockets: the
 * main IPv4 socket, and the first extra socket as the "filter" socket when
 * there is one (without it the filtering stays unknown, which birthday
 * probing treats as port-dependent).
 */
#ifndef WZP_CLIENT_NAT_WATCH_H
#define WZP_CLIENT_NAT_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "ice/natcheck.h"
#include "wire/signal.h"

typedef struct wzp_nat_watch {
    wzp_natcheck nc;
    bool running;
    bool early;                 /* the mapping-only verdict went out */
    int main_sock, filter_sock; /* the core's socket indices; filter -1: none */
    wzp_sig_nat nat;            /* all zero until measured */
    unsigned measured;          /* how many measurements finished (the core tells calls) */
} wzp_nat_watch;

/* Starts (again) against the relay's IPv4 address; a no-op for another family. */
void wzp_nat_watch_start(wzp_nat_watch *p, const wzp_addr *relay, int main_sock,
                         const wzp_addr *main_local, int filter_sock, const wzp_addr *filter_local,
                         wzp_ts now);
/* The next STUN request due: its length (0: none), the core socket and destination. */
int wzp_nat_watch_poll(wzp_nat_watch *p, wzp_ts now, uint8_t *buf, size_t cap, int *sock,
                       wzp_addr *to);
/* A STUN datagram on core socket `sock`; true if the probe took it (it is running). */
bool wzp_nat_watch_recv(wzp_nat_watch *p, int sock, const wzp_addr *from, const uint8_t *data,
                        size_t len, wzp_ts now);
wzp_ts wzp_nat_watch_deadline(const wzp_nat_watch *p);

#endif
