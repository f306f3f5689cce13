/*
 * Call-control messages between the two peers of a call, on the message
 * stream of their end-to-end QUIC connection (proto/wzp_call.proto; the relay
 * never sees them). Plain structs in, bytes out and back, one validator: what
 * the encoder writes is exactly what the decoder accepts.
 */
#ifndef WZP_WIRE_CALL_MSG_H
#define WZP_WIRE_CALL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Our messages are small; anything larger is not one of them. */
#define WZP_CALL_MSG_MAX_SIZE 256

typedef enum wzp_call_msg_type {
    WZP_CALL_MSG_HANGUP = 1, /* the sender ends the call and closes the connection */
    WZP_CALL_MSG_MUTE,       /* the sender (un)muted its microphone */
    WZP_CALL_MSG_STATS,      /* what the sender hears from us, every few seconds */
    WZP_CALL_MSG_ANSWER,     /* the callee answered (it sends audio from now on) */
    WZP_CALL_MSG_REPORT,     /* receiver report for the sender's adaptation, a few a second */
} wzp_call_msg_type;

/* Receiver report (proto/wzp_call.proto Report). */
typedef struct wzp_call_report {
    uint32_t interval_ms, slots, missing, runs, max_run, unrepaired;
    uint32_t jitter_us, delay_us, redundancy;
} wzp_call_report;

typedef struct wzp_call_msg {
    wzp_call_msg_type type;
    union {
        struct {
            bool error; /* ended because something failed, not by the user */
        } hangup;
        struct {
            bool muted;
        } mute;
        struct {
            uint64_t frames_received, frames_lost;
            uint32_t rtt_us;
        } stats;
        wzp_call_report report;
    } u;
} wzp_call_msg;

/* Returns the length written, WZP_ERR_INVALID for a bad message, WZP_ERR_TOO_BIG if cap is short.
 */
int wzp_call_msg_encode(const wzp_call_msg *m, uint8_t *out, size_t cap);
/*
 * Decodes one message: 0, WZP_ERR_MALFORMED (does not parse, or over
 * WZP_CALL_MSG_MAX_SIZE) or WZP_ERR_AGAIN for a well-formed message of a kind
 * we do not know (a newer peer's; ignore it).
 */
int wzp_call_msg_decode(const uint8_t *buf, size_t len, wzp_call_msg *m);

#endif
