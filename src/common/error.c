#include <wzp/wzp.h>

const char *wzp_strerror(int err)
{
    switch ((wzp_error)err) {
    case WZP_OK:
        return "success";
    case WZP_ERR_INVALID:
        return "invalid argument";
    case WZP_ERR_NOMEM:
        return "out of memory";
    case WZP_ERR_MALFORMED:
        return "malformed message";
    case WZP_ERR_TOO_BIG:
        return "message too big";
    case WZP_ERR_AGAIN:
        return "try again";
    case WZP_ERR_IO:
        return "I/O error";
    case WZP_ERR_TLS:
        return "TLS handshake failed";
    case WZP_ERR_PIN_MISMATCH:
        return "peer fingerprint does not match the pinned one";
    case WZP_ERR_TIMEOUT:
        return "timed out";
    case WZP_ERR_CLOSED:
        return "connection closed";
    case WZP_ERR_NOT_FOUND:
        return "not found";
    case WZP_ERR_REJECTED:
        return "call rejected";
    case WZP_ERR_BUSY:
        return "peer is busy";
    case WZP_ERR_OFFLINE:
        return "peer is offline";
    case WZP_ERR_UNREACHABLE:
        return "relay unreachable";
    case WZP_ERR_RATE_LIMITED:
        return "rate limited";
    case WZP_ERR_STATE:
        return "not allowed in this state";
    case WZP_ERR_PROTOCOL:
        return "protocol violation";
    case WZP_ERR_IDENTITY:
        return "identity missing or invalid";
    case WZP_ERR_AUDIO:
        return "audio error";
    case WZP_ERR_HANGUP:
        return "peer hung up";
    case WZP_ERR_CANCELLED:
        return "call cancelled";
    case WZP_ERR_EXPIRED:
        return "call expired unanswered";
    case WZP_ERR_LIMIT:
        return "capacity limit reached";
    case WZP_ERR_INTERNAL:
        return "internal error";
    case WZP_ERR_ALIAS_TAKEN:
        return "alias taken: the relay binds it to another key";
    case WZP_ERR_REPLACED:
        return "signed in elsewhere: another client registered this identity";
    case WZP_ERR_PEER_UNREACHABLE:
        return "peer unreachable";
    case WZP_ERR_RELAY_FULL:
        return "relay full";
    case WZP_ERR_DEVICE:
        return "sound device missing, busy or gone";
    case WZP_ERR_RESOLVE:
        return "host name does not resolve";
    case WZP_ERR_EXISTS:
        return "already exists";
    case WZP_ERR_KEY_CHANGED:
        return "the key called is offline and its alias has another key";
    }
    return "unknown error";
}
