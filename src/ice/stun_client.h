/*
 * STUN Binding client, sans-I/O: transactions that retransmit on the RFC 8489
 * schedule and yield the server-reflexive (mapped) address, and a NAT
 * mapping-behaviour probe built from two of them.
 *
 * Driving a transaction: start it, then whenever its deadline passes call
 * poll (which hands out the request to send, or declares a timeout), and feed
 * every STUN datagram from the socket to recv. Nothing here reads a clock or
 * touches a socket.
 */
#ifndef WZP_ICE_STUN_CLIENT_H
#define WZP_ICE_STUN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "wire/stun.h"

typedef struct wzp_stun_config {
    wzp_ts rto;           /* first retransmission timeout, doubled after each send; 500 ms */
    unsigned max_tx;      /* Rc: transmissions in all; 7 */
    unsigned final_wait;  /* Rm: after the last send, wait Rm x the first RTO; 16 */
    const char *software; /* SOFTWARE attribute in requests, or NULL (default) for none */
} wzp_stun_config;

/* RFC 8489 section 6.2.1 defaults: sends at 0, .5, 1.5, 3.5, 7.5, 15.5, 31.5 s; gives up at 39.5 s.
 */
void wzp_stun_config_default(wzp_stun_config *cfg);

typedef enum wzp_stun_txn_state {
    WZP_STUN_TXN_IDLE = 0,
    WZP_STUN_TXN_PENDING,
    WZP_STUN_TXN_DONE,   /* `mapped` holds the answer */
    WZP_STUN_TXN_FAILED, /* `error` says why */
} wzp_stun_txn_state;

#define WZP_STUN_REQ_MAX 128

typedef struct wzp_stun_txn {
    wzp_stun_config cfg;
    wzp_stun_txn_state state;
    wzp_addr server;
    uint8_t tid[WZP_STUN_TID_LEN];
    uint8_t req[WZP_STUN_REQ_MAX];
    size_t req_len;
    unsigned sent;
    wzp_ts next; /* next send, or the give-up time after the last one */
    wzp_ts rto;  /* interval after the next send */

    uint32_t change;     /* CHANGE-REQUEST flags asked for (then any source may answer) */
    wzp_addr mapped;     /* DONE: the address the server saw us from */
    wzp_addr responder;  /* DONE: where the answer came from */
    wzp_addr other;      /* DONE: the server's OTHER-ADDRESS (RFC 5780), len 0 if none */
    int error;           /* FAILED: WZP_ERR_TIMEOUT, WZP_ERR_REJECTED (error response) or
                            WZP_ERR_PROTOCOL (unusable success response) */
    uint16_t error_code; /* the STUN error code of an error response */
} wzp_stun_txn;

/*
 * Starts (or restarts) a Binding transaction towards `server`, with a fresh
 * random transaction id. cfg NULL = defaults. The first request is due at `now`.
 */
int wzp_stun_txn_start(wzp_stun_txn *t, const wzp_stun_config *cfg, const wzp_addr *server,
                       wzp_ts now);
/*
 * The same with a CHANGE-REQUEST (RFC 5780: WZP_STUN_CHANGE_IP / _PORT): the
 * server is asked to answer from another address or port, so the answer is
 * taken from any source (the random transaction id still has to match).
 */
int wzp_stun_txn_start_change(wzp_stun_txn *t, const wzp_stun_config *cfg, const wzp_addr *server,
                              uint32_t change, wzp_ts now);
/*
 * Call when now >= the deadline. Copies the request into out and its
 * destination into *to and returns its length when one is due; returns 0 when
 * nothing is to be sent (including the moment it gives up:
 * state becomes FAILED with WZP_ERR_TIMEOUT). WZP_ERR_TOO_BIG if cap is short.
 */
int wzp_stun_txn_poll(wzp_stun_txn *t, wzp_ts now, uint8_t *out, size_t cap, wzp_addr *to);
/* When poll must next be called; WZP_TS_NEVER once finished. */
wzp_ts wzp_stun_txn_deadline(const wzp_stun_txn *t);
/*
 * Offers a received datagram. 0 when it was this transaction's response
 * (the state is now DONE or FAILED); WZP_ERR_NOT_FOUND when it is not ours
 * (other transaction id, other source, not a Binding response, or already
 * finished); WZP_ERR_MALFORMED when it is not valid STUN.
 */
int wzp_stun_txn_recv(wzp_stun_txn *t, const wzp_addr *from, const uint8_t *data, size_t len,
                      wzp_ts now);

/* --- NAT mapping behaviour (RFC 4787 / 5780 terms) ---------------------------------- */

typedef enum wzp_nat_mapping {
    WZP_NAT_MAPPING_UNKNOWN = 0, /* a query failed, or the answers are not comparable */
    WZP_NAT_MAPPING_INDEPENDENT, /* same mapping towards both servers: hole punching works */
    WZP_NAT_MAPPING_DEPENDENT,   /* a new mapping per destination ("symmetric" NAT) */
} wzp_nat_mapping;

const char *wzp_nat_mapping_name(wzp_nat_mapping m);

/*
 * Classifies from the mapped addresses one local socket got from two
 * servers; NULL for a query that failed.
 */
wzp_nat_mapping wzp_nat_mapping_classify(const wzp_addr *mapped_a, const wzp_addr *mapped_b);

/*
 * Two concurrent Binding transactions from the same local socket. Two IP
 * addresses tell endpoint-independent from any dependent mapping; two ports
 * of one address only detect address-and-port-dependent mapping (an
 * address-dependent NAT reuses the mapping for the same IP).
 */
typedef struct wzp_nat_probe {
    wzp_stun_txn txn[2];
} wzp_nat_probe;

int wzp_nat_probe_start(wzp_nat_probe *p, const wzp_stun_config *cfg, const wzp_addr *server_a,
                        const wzp_addr *server_b, wzp_ts now);
/* As wzp_stun_txn_poll, for whichever transaction is due. Call until it returns 0. */
int wzp_nat_probe_poll(wzp_nat_probe *p, wzp_ts now, uint8_t *out, size_t cap, wzp_addr *to);
wzp_ts wzp_nat_probe_deadline(const wzp_nat_probe *p);
/* 0 if one of the two transactions took the datagram, else as wzp_stun_txn_recv. */
int wzp_nat_probe_recv(wzp_nat_probe *p, const wzp_addr *from, const uint8_t *data, size_t len,
                       wzp_ts now);
bool wzp_nat_probe_done(const wzp_nat_probe *p);
/* UNKNOWN until done. */
wzp_nat_mapping wzp_nat_probe_result(const wzp_nat_probe *p);

#endif
