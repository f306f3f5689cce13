/* ngtcp2's allocator for endpoints holding many idle connections (see lean_mem.c). */
#ifndef WZP_QUIC_LEAN_MEM_H
#define WZP_QUIC_LEAN_MEM_H

#include <stdbool.h>

#include <ngtcp2/ngtcp2.h>

/* The process-wide allocator, thread-safe; NULL if its region cannot be reserved (then
 * ngtcp2's default allocator). Its memory is never returned to the system as address
 * space, only as pages. */
const ngtcp2_mem *wzp_quic_lean_mem(void);

#endif
