/*
 * The relay's X25519 shared secrets from libsodium instead of nettle.
 *
 * A full TLS handshake per registration is most of a registration's relay CPU, and
 * the X25519 key exchange is its largest part: GnuTLS computes the shared secret with
 * nettle's curve25519_mul, which takes about 60 us on the bench machine where
 * libsodium's crypto_scalarmult takes about 41 us. GnuTLS has no hook for its
 * public-key arithmetic, so the relay defines nettle's symbol itself and the dynamic
 * linker binds libgnutls's calls to the program's definition, as it does for malloc.
 * Both compute RFC 7748's X25519 (clamped scalar, the point's top bit ignored), to the
 * same bytes: unit.relay_x25519 compares them. nettle's curve25519_mul_g (key
 * generation) stays: it is faster than libsodium's base-point multiplication here.
 * The library does not do this: an application's GnuTLS is its own business.
 */
#include <nettle/curve25519.h>
#include <sodium.h>
#include <string.h>

void curve25519_mul(uint8_t *q, const uint8_t *n, const uint8_t *p)
{
    /* Selects the fastest code for this CPU (once); should it fail, libsodium's portable
     * code still computes X25519. */
    int ready = sodium_init();
    (void)ready;
    /* libsodium refuses a point of small order (or an all-zero result) and may then leave
     * q unwritten; nettle's answer there is all zeros, which GnuTLS rejects itself. */
    if (crypto_scalarmult_curve25519(q, n, p) != 0)
        memset(q, 0, CURVE25519_SIZE);
}
