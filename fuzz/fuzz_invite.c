/*
 * Fuzzes the invite decoder (src/phone/invite.c) with any text. Beyond "no
 * crash": a refusal always carries its one-line reason; an accepted invite
 * has valid fields and encodes to a line that decodes to the same invite.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phone/invite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char text[4097];
    memcpy(text, data, size);
    text[size] = '\0'; /* a NUL inside ends the text early, as for a C string argument */
    wzp_invite inv, back;
    const char *why = NULL;
    int rv = wzp_invite_decode(text, &inv, &why);
    if (rv != 0) {
        if (rv != WZP_ERR_MALFORMED || !why || !why[0])
            abort();
        return 0;
    }
    if (!wzp_invite_looks_like(text) || (inv.alias[0] && !wzp_sig_alias_valid(inv.alias)) ||
        (inv.relay[0] && !wzp_relay_text_valid(inv.relay)))
        abort();
    char out[WZP_INVITE_TEXT_MAX];
    if (wzp_invite_encode(&inv, out, sizeof(out)) <= 0 ||
        wzp_invite_decode(out, &back, &why) != 0 || memcmp(&inv, &back, sizeof(inv)) != 0)
        abort();
    return 0;
}
