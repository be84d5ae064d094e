/* tg.c: small helpers shared by the core. */
#include "tg.h"

const char *tg_strerror(int code)
{
    switch (code) {
    case TG_OK: return "ok";
    case TG_ERROR: return "error";
    case TG_EAGAIN: return "try again";
    case TG_ENOMEM: return "out of memory";
    case TG_EINVAL: return "invalid argument";
    case TG_ENOTFOUND: return "not found";
    case TG_ETOOLARGE: return "too large";
    case TG_ETIMEDOUT: return "timed out";
    case TG_EIO: return "i/o error";
    case TG_ECONFLICT: return "conflict";
    }
    return "unknown error";
}

bool tg_str_ieq(const char *a, size_t alen, const char *lower, size_t llen)
{
    if (alen != llen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c != (unsigned char)lower[i])
            return false;
    }
    return true;
}
