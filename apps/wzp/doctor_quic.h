/*
 * wzp doctor's QUIC check: one handshake with the relay from a throwaway
 * identity (never the user's: registering it would sign the user out
 * wherever else they are). Checks the relay's key against the pin, or
 * reports it when none is given, and times the handshake.
 */
#ifndef WZP_APP_DOCTOR_QUIC_H
#define WZP_APP_DOCTOR_QUIC_H

#include <stdbool.h>

#include <wzp/identity.h>

#include "common/addr.h"
#include "common/time.h"

typedef struct doctor_quic {
    bool tried;
    bool ok;           /* handshake completed (and the key matched the pin, if given) */
    bool pin_mismatch; /* the relay presented another key than the pin */
    wzp_ts handshake;  /* from the first Initial to the handshake confirmed */
    char fp[WZP_FINGERPRINT_STRLEN]; /* the key the relay proved ("" if none) */
    char detail[160];                /* why it failed */
} doctor_quic;

/* Blocks until done or `timeout`. pin NULL: any key (reported). */
void doctor_quic_check(doctor_quic *out, const wzp_addr *relay, const uint8_t *pin, wzp_ts timeout);

#endif
