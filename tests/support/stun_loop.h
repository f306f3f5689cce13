/*
 * Test helpers that put the sans-I/O STUN pieces on real loopback sockets
 * with the runtime's event loop: a Binding responder and a client driver.
 */
#ifndef WZP_TESTS_STUN_LOOP_H
#define WZP_TESTS_STUN_LOOP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/addr.h"
#include "ice/stun_client.h"
#include "net/loop.h"

/* A UDP socket answering Binding requests with wzp_stun_respond(). */
typedef struct stun_responder {
    int fd;
    wzp_addr addr; /* bound address */
    wzp_io io;
    unsigned answered;
    wzp_addr last_from; /* source of the last request answered */
} stun_responder;

/* Opens a socket on `bind` ("127.0.0.1:0") and starts answering on loop. 0 or a wzp_error. */
int stun_responder_open(wzp_loop *loop, stun_responder *r, const char *bind);
void stun_responder_close(wzp_loop *loop, stun_responder *r);

/*
 * Runs loop until all n transactions (already started, sharing socket fd)
 * finished, or `limit` passed. Returns 0, or WZP_ERR_TIMEOUT if the limit hit.
 */
int stun_loop_run_txns(wzp_loop *loop, int fd, wzp_stun_txn *txns, size_t n, wzp_ts limit);

/* Binds port 0, reads the port the kernel chose, closes: a probably-free port for a child. */
int stun_free_udp_port(const char *ip);

#endif
