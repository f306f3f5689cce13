/*
 * STUN (RFC 8489) message codec, sans-I/O: enough of it for Binding
 * requests, success and error responses, which is all wzp uses STUN for
 * (learning a server-reflexive address and the NAT's mapping behaviour).
 *
 * Decoding is strict about framing (cookie, length, padding, FINGERPRINT)
 * and lenient about content the way the RFC asks: unknown
 * comprehension-optional attributes are skipped, unknown
 * comprehension-required ones are reported so the caller can answer 420.
 */
#ifndef WZP_WIRE_STUN_H
#define WZP_WIRE_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/bytes.h"

#define WZP_STUN_MAGIC      0x2112A442u
#define WZP_STUN_HEADER_LEN 20
#define WZP_STUN_TID_LEN    12

/* Message classes (already shifted into their type bits) and the one method we speak. */
#define WZP_STUN_CLASS_REQUEST    0x0000u
#define WZP_STUN_CLASS_INDICATION 0x0010u
#define WZP_STUN_CLASS_SUCCESS    0x0100u
#define WZP_STUN_CLASS_ERROR      0x0110u
#define WZP_STUN_METHOD_BINDING   0x0001u

#define WZP_STUN_BINDING_REQUEST (WZP_STUN_METHOD_BINDING | WZP_STUN_CLASS_REQUEST)
#define WZP_STUN_BINDING_SUCCESS (WZP_STUN_METHOD_BINDING | WZP_STUN_CLASS_SUCCESS)
#define WZP_STUN_BINDING_ERROR   (WZP_STUN_METHOD_BINDING | WZP_STUN_CLASS_ERROR)

/* Attribute types. */
#define WZP_STUN_ATTR_MAPPED_ADDRESS        0x0001u
#define WZP_STUN_ATTR_USERNAME              0x0006u
#define WZP_STUN_ATTR_MESSAGE_INTEGRITY     0x0008u
#define WZP_STUN_ATTR_ERROR_CODE            0x0009u
#define WZP_STUN_ATTR_UNKNOWN_ATTRIBUTES    0x000Au
#define WZP_STUN_ATTR_REALM                 0x0014u
#define WZP_STUN_ATTR_NONCE                 0x0015u
#define WZP_STUN_ATTR_MESSAGE_INTEGRITY_256 0x001Cu
#define WZP_STUN_ATTR_PASSWORD_ALGORITHM    0x001Du
#define WZP_STUN_ATTR_USERHASH              0x001Eu
#define WZP_STUN_ATTR_XOR_MAPPED_ADDRESS    0x0020u
#define WZP_STUN_ATTR_SOFTWARE              0x8022u
#define WZP_STUN_ATTR_FINGERPRINT           0x8028u
/* RFC 5780 (NAT behaviour discovery). */
#define WZP_STUN_ATTR_CHANGE_REQUEST 0x0003u
#define WZP_STUN_ATTR_OTHER_ADDRESS  0x802Cu
#define WZP_STUN_CHANGE_IP           0x04u
#define WZP_STUN_CHANGE_PORT         0x02u

/* Longest SOFTWARE / reason phrase the RFC allows (763 bytes: 127 characters of UTF-8). */
#define WZP_STUN_TEXT_MAX 763
/* How many unknown comprehension-required attributes a decode remembers. */
#define WZP_STUN_MAX_UNKNOWN 8

#define WZP_STUN_IS_REQUEST(type) (((type)&0x0110u) == WZP_STUN_CLASS_REQUEST)
#define WZP_STUN_METHOD(type)                                                                      \
    ((uint16_t)(((type)&0x000Fu) | (((type)&0x00E0u) >> 1) | (((type)&0x3E00u) >> 2)))
#define WZP_STUN_CLASS(type) ((uint16_t)((type)&0x0110u))

/* A decoded message. Text fields point into the decoded buffer (not NUL-terminated). */
typedef struct wzp_stun_msg {
    uint16_t type;
    uint8_t tid[WZP_STUN_TID_LEN];

    bool has_xor_mapped;
    wzp_addr xor_mapped;
    bool has_mapped;
    wzp_addr mapped;

    bool has_error;
    uint16_t error_code; /* 300..699 */
    const uint8_t *reason;
    size_t reason_len;

    const uint8_t *software;
    size_t software_len;

    /* RFC 5780: a request's CHANGE-REQUEST flags, a response's OTHER-ADDRESS. */
    bool has_change;
    uint32_t change;
    bool has_other;
    wzp_addr other;

    /* UNKNOWN-ATTRIBUTES as carried by a 420 error response. */
    uint16_t listed_unknown[WZP_STUN_MAX_UNKNOWN];
    size_t n_listed_unknown;

    /* Comprehension-required attributes this codec does not understand. */
    uint16_t unknown[WZP_STUN_MAX_UNKNOWN];
    size_t n_unknown;

    bool has_integrity;   /* MESSAGE-INTEGRITY(-SHA256) present; not verified here */
    bool has_fingerprint; /* present and verified */
} wzp_stun_msg;

/*
 * Cheap test for "this datagram is framed as STUN": first two bits zero, the
 * magic cookie, a length that is a multiple of 4 and matches the datagram.
 * Says nothing about the attributes.
 */
bool wzp_stun_is_framed(const uint8_t *buf, size_t len);

/*
 * Decodes one datagram. 0 on success; WZP_ERR_MALFORMED for a bad frame,
 * an attribute that overruns or is malformed, a known attribute with a bad
 * value, a FINGERPRINT that does not match or is not last. Messages without
 * the magic cookie (RFC 3489) are rejected.
 */
int wzp_stun_decode(wzp_stun_msg *m, const uint8_t *buf, size_t len);

/* CRC-32 (ISO-HDLC, as zlib) of len bytes; FINGERPRINT is this xor 0x5354554e. */
uint32_t wzp_stun_crc32(const uint8_t *buf, size_t len);

/*
 * Encoding: begin, add attributes, finish. Errors (no room) accumulate in the
 * writer; finish returns the message length or WZP_ERR_TOO_BIG.
 */
typedef struct wzp_stun_wr {
    wzp_wr w;
    uint8_t tid[WZP_STUN_TID_LEN];
} wzp_stun_wr;

void wzp_stun_begin(wzp_stun_wr *sw, uint8_t *buf, size_t cap, uint16_t type,
                    const uint8_t tid[WZP_STUN_TID_LEN]);
/* XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS when xor is false) of an IPv4/IPv6 address. */
void wzp_stun_put_addr(wzp_stun_wr *sw, const wzp_addr *a, bool xor_encoded);
/* Any address attribute (OTHER-ADDRESS, ...), in the same encoding. */
void wzp_stun_put_addr_attr(wzp_stun_wr *sw, uint16_t type, const wzp_addr *a, bool xor_encoded);
void wzp_stun_put_software(wzp_stun_wr *sw, const char *text);
/* ERROR-CODE with code 300..699 and a short reason. */
void wzp_stun_put_error(wzp_stun_wr *sw, uint16_t code, const char *reason);
void wzp_stun_put_unknown_attrs(wzp_stun_wr *sw, const uint16_t *types, size_t n);
/* Any attribute, with padding. */
void wzp_stun_put_attr(wzp_stun_wr *sw, uint16_t type, const void *value, size_t len);
/* Fixes up the length and optionally appends FINGERPRINT; the message length or an error. */
int wzp_stun_finish(wzp_stun_wr *sw, bool fingerprint);

/* A Binding request with FINGERPRINT, optionally SOFTWARE; its length or an error. */
int wzp_stun_binding_request(uint8_t *buf, size_t cap, const uint8_t tid[WZP_STUN_TID_LEN],
                             const char *software);
/* The same with CHANGE-REQUEST (WZP_STUN_CHANGE_* flags; 0 = none, as above). */
int wzp_stun_binding_request_change(uint8_t *buf, size_t cap, const uint8_t tid[WZP_STUN_TID_LEN],
                                    const char *software, uint32_t change);

#endif
