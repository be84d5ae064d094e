/* uri.h: request path normalisation and re-escaping, as Kong's kong/tools/uri.lua does.
 *
 * Kong (router_flavor traditional_compatible) routes on the *normalised* path:
 *   - `%XX` triplets are decoded, except the reserved set !*'();:@&=+$,/?%#[] which stays
 *     encoded with its hex upper-cased (`%2f` -> `%2F`);
 *   - `//` runs are merged;
 *   - dot segments are removed per RFC 3986 (a just-decoded `%2e` counts as a dot).
 * The upstream request line is built from the normalised path re-escaped with
 * tg_uri_escape_path (Kong's `escape`).
 *
 * Where nginx (in front of Kong's Lua) refuses a request target, so do we: a `%` not followed
 * by two hex digits, or `%00`, is TG_EINVAL (Kong answers 400 for both). */
#ifndef TG_URI_H
#define TG_URI_H

#include "tg.h"

/* Normalises the path `in` (a query string, from the first raw '?', is dropped) into `out`.
 * Returns the output length (never more than len), TG_EINVAL for an invalid %-escape or %00,
 * TG_ETOOLARGE when cap is too small. `out` is not NUL-terminated unless room remains, in
 * which case it is. in and out must not overlap. */
int tg_uri_normalize(const char *in, size_t len, char *out, size_t cap);

/* Same normalisation but lenient about bad escapes (they are kept verbatim, as Kong's
 * normalize() does at config time). Used by the route schema check. */
int tg_uri_normalize_lenient(const char *in, size_t len, char *out, size_t cap);

/* Re-escapes a normalised path for the upstream: every byte outside
 * A-Z a-z 0-9 - _ . ~ ! # $ & ' ( ) * + , / : ; = ? @ [ ] % becomes %XX (upper-case hex).
 * Returns the output length or TG_ETOOLARGE. */
int tg_uri_escape_path(const char *in, size_t len, char *out, size_t cap);

/* True when `path` (a route prefix path) is already in normalised form, i.e. Kong accepts it.
 * When false and norm != NULL, the normalised form is written to norm (NUL-terminated,
 * truncated to normcap). */
bool tg_uri_is_normalized(const char *path, size_t len, char *norm, size_t normcap);

#endif
