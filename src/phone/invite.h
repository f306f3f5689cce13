/*
 * Invites: one copy-paste line that tells a friend how to call you, with
 * nothing configured on their side: your fingerprint, optionally the relay
 * (address or host name, port, pin) and an alias.
 *
 *     wzp1:<base32 payload>
 *
 * "wzp" + version + ':' (any case; decoders reject other versions with their
 * own message), then lowercase RFC 4648 base32 without padding (whitespace and
 * '-' ignored when read) of:
 *
 *     flags     u8   bit 0: alias present, bit 1: relay present; others zero
 *     fp        32   the identity's fingerprint (SHA-256 of its SPKI)
 *     [alias]   u8 length (1..32) + bytes (wzp_sig_alias_valid)
 *     [relay]   u8 length (1..WZP_RELAY_TEXT_MAX) + "HOST:PORT" (wzp_relay_text_valid)
 *               + 32-byte relay pin
 *     checksum  5    first 5 bytes of SHA-256("wzp-invite" 0x01 || all of the above)
 *
 * The checksum catches typos, truncation and accidental damage (a wrong
 * character fails it with probability 1 - 2^-40). It is not a signature: whoever
 * can replace the whole line can send their own key; the verification code of
 * the first call (and comparing fingerprints) is what catches that.
 */
#ifndef WZP_PHONE_INVITE_H
#define WZP_PHONE_INVITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/identity.h>

#include "wire/signal.h"

#define WZP_INVITE_VERSION 1
/* "HOST:PORT": a DNS name (253) or a bracketed IPv6 literal, ':', 5 digits. */
#define WZP_RELAY_TEXT_MAX 262
/* Relays of a cluster an invite may name besides the first. */
#define WZP_INVITE_MORE_RELAYS 2
/* Longest invite text, NUL included (three relays with the longest names). */
#define WZP_INVITE_TEXT_MAX 1600

typedef struct wzp_invite {
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char alias[WZP_SIG_ALIAS_MAX + 1];      /* "" for none */
    char relay[WZP_RELAY_TEXT_MAX + 1];     /* "" for none; else "HOST:PORT" */
    uint8_t relay_pin[WZP_FINGERPRINT_LEN]; /* with relay only */
    /* Other relays of the same cluster (with relay only; invites without them are the same
     * bytes as before they existed, so older wzp versions read this one's single-relay
     * invites). */
    unsigned n_more;
    char more_relay[WZP_INVITE_MORE_RELAYS][WZP_RELAY_TEXT_MAX + 1];
    uint8_t more_pin[WZP_INVITE_MORE_RELAYS][WZP_FINGERPRINT_LEN];
} wzp_invite;

/* "HOST:PORT" with HOST a DNS name or IPv4 address ([A-Za-z0-9.-], 1..253, no leading '-' or
 * '.') or "[IPv6]" ([0-9A-Fa-f:.]), PORT 1..65535 in decimal without leading zeros. Only the
 * syntax: host names are resolved by whoever dials. */
bool wzp_relay_text_valid(const char *text);

/* Writes the invite line (NUL-terminated) into buf. Returns its length, WZP_ERR_INVALID for an
 * invalid alias or relay, WZP_ERR_TOO_BIG if cap is too small (WZP_INVITE_TEXT_MAX is enough). */
int wzp_invite_encode(const wzp_invite *inv, char *buf, size_t cap);

/* True when text starts like an invite ("wzp" digits ':', any case, leading whitespace
 * skipped): what a command line argument is meant to be, even if it is damaged. */
bool wzp_invite_looks_like(const char *text);

/* Parses an invite (leading and trailing whitespace allowed). 0, or WZP_ERR_MALFORMED with a
 * one-line reason in *why (static): "not a wzp invite", "unsupported invite version N (this
 * wzp reads version 1)", "invite damaged: checksum mismatch", ... */
int wzp_invite_decode(const char *text, wzp_invite *out, const char **why);

#endif
