/*
 * qnet: QUIC endpoints on the simulated network (tests/support/netsim.h),
 * for endpoint-to-endpoint QUIC tests on a virtual clock.
 *
 * Each node is one wzp_quic_endpoint bound at "ip:port" on a netsim host
 * (nodes sharing an IP share a host) attached to the simulated internet.
 * Packets the endpoints flush are sent through netsim, so delay (per node,
 * symmetric), loss and ordering are netsim's; a test hook sees every packet
 * before it is sent and may drop it, copy it, or rewrite its source address.
 * qnet_run() alternates netsim deliveries with the endpoints' timers, always
 * jumping the clock to the next event, until a condition holds or a virtual
 * deadline passes.
 *
 * A node made with qnet_add() records what its endpoint reports (struct
 * qnet_rec) and, on a server, accepts connections by the policy in its rec;
 * qnet_add_ep() takes an endpoint the test made with its own callbacks.
 */
#ifndef WZP_TESTS_QNET_H
#define WZP_TESTS_QNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/identity.h>

#include "common/addr.h"
#include "common/time.h"
#include "quic/quic.h"
#include "support/netsim.h"

#define QNET_MAX_NODES 8
#define QNET_MAX_CONNS 8

/* What a qnet_add() node's endpoint reported, and its server policy. */
typedef struct qnet_rec {
    int established, closed;
    int closed_by_peer; /* closes with by_peer set */
    uint64_t dgrams, dgram_bytes, msgs;
    size_t last_msg_len;
    uint8_t last_msg[256];
    /* The last close. */
    int close_err;
    bool close_by_peer, close_by_reset;
    uint64_t close_app;
    char close_reason[256], close_detail[256];
    uint8_t peer_fp[WZP_FINGERPRINT_LEN];
    int anonymous; /* established without a peer certificate (cert_optional) */
    uint8_t binding[WZP_QUIC_AUTH_BINDING]; /* the last of those: its Auth binding */
    wzp_quic_conn *conn;                    /* last established, NULL once it closed */
    int nconns;
    wzp_quic_conn *conns[QNET_MAX_CONNS]; /* established ones in order, NULL once closed */
    /* Server policy (accept callback). */
    wzp_quic_pin_mode pin_mode; /* default EXACT on `pin` */
    uint8_t pin[WZP_FINGERPRINT_LEN];
    size_t max_message; /* 0: default */
    wzp_ts idle;        /* 0: default */
    wzp_ts keep_alive;
    bool refuse;        /* drop new Initials */
    bool echo;          /* echo datagrams back */
    bool greet;         /* send a datagram ("welcome") as soon as established */
    bool release_tls;   /* accepted connections free their TLS session once established */
    bool cert_optional; /* accepted connections take clients without a certificate */
} qnet_rec;

typedef struct qnet qnet;

typedef struct qnet_node {
    qnet *net;
    int idx;
    wzp_quic_endpoint *ep; /* freed by qnet_free; a test may replace it (a restart) */
    wzp_addr addr;         /* the endpoint's local address: what it passes to QUIC */
    wzp_addr public;       /* where peers see and reach it: addr until qnet_rebind */
    wzp_sim_host *host;
    wzp_sim_sock *sock; /* bound at public */
    qnet_rec ev;        /* qnet_add nodes */
} qnet_node;

/* A packet an endpoint flushed, as the hook sees it. */
typedef struct qnet_pkt {
    qnet_node *from;
    qnet_node *to; /* the node reached at dst, NULL: nobody (the packet is lost) */
    wzp_addr src;  /* the source the network shows; a hook may rewrite it (spoofing) */
    wzp_addr dst;
    const uint8_t *data;
    size_t len;
} qnet_pkt;

/* false: drop the packet (a hook that holds or captures it copies it first). */
typedef bool (*qnet_hook_fn)(qnet *q, qnet_pkt *p, void *arg);
/* Condition for qnet_run. */
typedef bool (*qnet_done_fn)(qnet *q, void *arg);

struct qnet {
    wzp_sim *sim;
    qnet_node nodes[QNET_MAX_NODES];
    int n;
    wzp_ts delay; /* one-way delay between any two nodes (set before adding them) */
    qnet_hook_fn hook;
    void *hook_arg;
    bool cut; /* drop everything */
    /* Called after every flush (flushed true) and after every delivery and
     * timer round (false): tests checking an endpoint's invariants. */
    void (*check)(qnet *q, bool flushed, void *arg);
    void *check_arg;
    /* Called after each packet fed to a node's endpoint (reacting per packet). */
    void (*delivered)(qnet *q, qnet_node *to, void *arg);
    void *delivered_arg;
    uint64_t sent, unroutable; /* packets flushed; of them, to an address nobody has */
    /* Private: the hosts by IP, and the sockets spoofed sources are sent from. */
    struct {
        wzp_addr ip;
        wzp_sim_host *host;
    } ips[2 * QNET_MAX_NODES + 8];
    int nips;
    struct {
        wzp_addr addr;
        wzp_sim_sock *sock;
    } spoofs[8];
    int nspoofs;
};

/* A network on a virtual clock starting at `start`, one-way delay `delay`. */
void qnet_init(qnet *q, wzp_ts start, wzp_ts delay);
/* Frees every node's endpoint and the simulation. */
void qnet_free(qnet *q);
wzp_ts qnet_now(const qnet *q);

/* A node with a new endpoint (identity id, server or client) recording into nd->ev. */
qnet_node *qnet_add(qnet *q, const char *addr, const wzp_identity *id, bool server);
/* A node around an endpoint the caller made (ep may be NULL and set later). */
qnet_node *qnet_add_ep(qnet *q, const char *addr, wzp_quic_endpoint *ep);
/* The node reached at a (its public address), or NULL. */
qnet_node *qnet_node_at(qnet *q, const wzp_addr *a);
/* The endpoint callbacks qnet_add installs (user: the qnet_node; accepted connections
 * record into it), for endpoints made by hand. */
extern const wzp_quic_callbacks qnet_callbacks;
/* The recorder's connection callbacks (user: the qnet_node), for connections made by hand. */
extern const wzp_quic_conn_callbacks *const qnet_conn_callbacks;

/* A server node's policy: pin exactly fp. */
void qnet_pin(qnet_node *sv, const uint8_t fp[WZP_FINGERPRINT_LEN]);
/* Connection options: defaults, pin exactly fp, initial RTT 10 ms. */
void qnet_opts(wzp_quic_conn_config *o, const uint8_t fp[WZP_FINGERPRINT_LEN]);
/* Connects node cl to `to`; asserts success. Options without callbacks record into cl. */
wzp_quic_conn *qnet_connect(qnet *q, qnet_node *cl, const wzp_addr *to,
                            const wzp_quic_conn_config *o);
/* qnet_connect to sv's public address with qnet_opts(pin). */
wzp_quic_conn *qnet_dial(qnet *q, qnet_node *cl, qnet_node *sv, const uint8_t *pin);

/* Flushes every endpoint into the network (what a test queued goes out now). */
void qnet_flush(qnet *q);
/* Flushes one node's endpoint; wzp_quic_endpoint_flush's result (packets written). */
int qnet_flush_node(qnet_node *nd);
/*
 * Runs for dur of virtual time, or until done(q, arg) holds (checked after
 * every flush; NULL: the whole time). Returns whether done held.
 */
bool qnet_run(qnet *q, wzp_ts dur, qnet_done_fn done, void *arg);
/* Moves the clock on by dt delivering what arrives meanwhile, but running
 * no endpoint timers and flushing nothing (time passing for a process that
 * is not scheduled). */
void qnet_skip(qnet *q, wzp_ts dt);
/* No packet in flight. */
bool qnet_idle(const qnet *q);

/*
 * NAT rebinding: peers now see nd at `public` ("ip:port") and reach it only
 * there; nd's endpoint keeps passing its own address and cannot tell.
 */
void qnet_rebind(qnet_node *nd, const char *public);

/* Conditions: every node established or closed at least once, and nothing in flight. */
bool qnet_all_settled(qnet *q, void *arg);
/* Node 1 (the first client) closed a connection. */
bool qnet_client_closed(qnet *q, void *arg);
/* Nodes 1.. together established at least *(int *)arg connections. */
bool qnet_clients_established(qnet *q, void *arg);

#endif
