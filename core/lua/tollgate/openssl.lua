-- tollgate.openssl: the one FFI binding to libcrypto (OpenSSL 3) and zlib
-- that resty.string, resty.sha*, resty.md5, resty.random, resty.openssl.*,
-- ngx.base64 and tollgate's ngx shim share. Also the helpers they have in
-- common: the error text of OpenSSL's queue, memory BIOs, digest lookup.
local ffi = require "ffi"

local ffi_new = ffi.new
local ffi_str = ffi.string
local ffi_gc = ffi.gc
local type = type
local tostring = tostring
local select = select
local getmetatable = getmetatable

ffi.cdef [[
typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;
typedef struct ossl_provider_st OSSL_PROVIDER;
typedef struct evp_md_st EVP_MD;
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;
typedef struct hmac_ctx_st HMAC_CTX;
typedef struct bio_st BIO;
typedef struct bio_method_st BIO_METHOD;
typedef struct bignum_st BIGNUM;
typedef struct bignum_ctx BN_CTX;
typedef struct x509_st X509;
typedef struct X509_name_st X509_NAME;
typedef struct X509_name_entry_st X509_NAME_ENTRY;
typedef struct asn1_string_st ASN1_STRING;
typedef struct asn1_string_st ASN1_INTEGER;
typedef struct asn1_string_st ASN1_TIME;
typedef struct asn1_object_st ASN1_OBJECT;
typedef struct ossl_decoder_ctx_st OSSL_DECODER_CTX;
typedef struct ossl_encoder_ctx_st OSSL_ENCODER_CTX;
typedef struct ECDSA_SIG_st ECDSA_SIG;
typedef struct engine_st ENGINE;
typedef long time_t;
struct tm {
  int tm_sec, tm_min, tm_hour, tm_mday, tm_mon, tm_year, tm_wday, tm_yday, tm_isdst;
  long tm_gmtoff; const char *tm_zone;
};

unsigned long ERR_get_error(void);
unsigned long ERR_peek_last_error(void);
void ERR_error_string_n(unsigned long e, char *buf, size_t len);
void ERR_clear_error(void);
void CRYPTO_free(void *ptr, const char *file, int line);

unsigned long OpenSSL_version_num(void);
const char *OpenSSL_version(int type);
const char *OPENSSL_info(int type);

EVP_MD_CTX *EVP_MD_CTX_new(void);
void EVP_MD_CTX_free(EVP_MD_CTX *ctx);
EVP_MD *EVP_MD_fetch(OSSL_LIB_CTX *ctx, const char *algorithm, const char *properties);
void EVP_MD_free(EVP_MD *md);
const EVP_MD *EVP_md_null(void);
int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl);
int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt);
int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s);
int EVP_MD_get_size(const EVP_MD *md);
const char *EVP_MD_get0_name(const EVP_MD *md);
const OSSL_PROVIDER *EVP_MD_get0_provider(const EVP_MD *md);
const char *OSSL_PROVIDER_get0_name(const OSSL_PROVIDER *prov);

HMAC_CTX *HMAC_CTX_new(void);
void HMAC_CTX_free(HMAC_CTX *ctx);
int HMAC_Init_ex(HMAC_CTX *ctx, const void *key, int len, const EVP_MD *md, ENGINE *impl);
int HMAC_Update(HMAC_CTX *ctx, const unsigned char *data, size_t len);
int HMAC_Final(HMAC_CTX *ctx, unsigned char *md, unsigned int *len);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *data, size_t data_len,
                    unsigned char *md, unsigned int *md_len);

int RAND_bytes(unsigned char *buf, int num);
int RAND_priv_bytes(unsigned char *buf, int num);
int RAND_bytes_ex(OSSL_LIB_CTX *ctx, unsigned char *buf, size_t num, unsigned int strength);
int RAND_priv_bytes_ex(OSSL_LIB_CTX *ctx, unsigned char *buf, size_t num, unsigned int strength);

int EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n);
int EVP_DecodeBlock(unsigned char *t, const unsigned char *f, int n);

const BIO_METHOD *BIO_s_mem(void);
BIO *BIO_new(const BIO_METHOD *type);
BIO *BIO_new_mem_buf(const void *buf, int len);
long BIO_ctrl(BIO *bp, int cmd, long larg, void *parg);
int BIO_free(BIO *a);

int OPENSSL_buf2hexstr_ex(char *str, size_t str_n, size_t *strlength,
                          const unsigned char *buf, size_t buflen, const char sep);
typedef struct stack_st OPENSSL_STACK;
int OPENSSL_sk_num(const OPENSSL_STACK *st);
void *OPENSSL_sk_value(const OPENSSL_STACK *st, int i);
typedef struct {
  int type;
  union { void *ptr; ASN1_STRING *ia5; X509_NAME *directoryName; } d;
} GENERAL_NAME;

int atoi(const char *nptr);
time_t timegm(struct tm *tm);
]]

local C = ffi.C
local ok_z, Z = pcall(ffi.load, "libz.so.1")
if ok_z then
  ffi.cdef [[
  unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len);
  ]]
end

local M = { C = C }

--- zlib (nil when libz.so.1 cannot be loaded).
M.Z = ok_z and Z or nil

-- A growable scratch buffer (one per state; callers copy out with ffi.string
-- before the next call).
local buf, buf_size = nil, 0
function M.buf(n)
  if n > buf_size then
    buf_size = n < 4096 and 4096 or n
    buf = ffi_new("unsigned char[?]", buf_size)
  end
  return buf
end

M.uint = ffi.typeof("unsigned int[1]")
M.size_t = ffi.typeof("size_t[1]")

--- The text of OpenSSL's error queue, prefixed with `where` (lua-resty-openssl's
-- shape: "digest:update: error:...:reason"); clears the queue.
function M.err(where, msg)
  local code = C.ERR_peek_last_error()
  local last
  while C.ERR_get_error() ~= 0 do -- keep the last one, the most specific
  end
  if code ~= 0 then
    local b = M.buf(256)
    C.ERR_error_string_n(code, ffi.cast("char *", b), 256)
    last = ffi_str(b)
  end
  local out = where
  if msg then
    out = out .. ": " .. msg
  end
  if last then
    out = out .. ": " .. last
  end
  if not msg and not last then
    out = out .. ": unknown error"
  end
  return out
end

--- A fetched EVP_MD for a case-insensitive name ("null" is the null digest),
-- garbage-collected; nil when unknown.
local md_cache = {}
function M.md(name)
  name = name or "sha1"
  if type(name) ~= "string" then
    return nil
  end
  local key = name:lower()
  local md = md_cache[key]
  if md then
    return md
  end
  if key == "null" then
    md = C.EVP_md_null()
  else
    md = C.EVP_MD_fetch(nil, name, nil)
    if md == nil then
      C.ERR_clear_error()
      return nil
    end
    md = ffi_gc(md, C.EVP_MD_free)
  end
  md_cache[key] = md
  return md
end

--- The contents of a memory BIO as a Lua string.
function M.bio_string(bio)
  local p = ffi_new("char *[1]")
  local n = C.BIO_ctrl(bio, 3, 0, p) -- BIO_CTRL_INFO
  if n <= 0 then
    return ""
  end
  return ffi_str(p[0], n)
end

--- A new memory BIO (freed when collected).
function M.mem_bio()
  local bio = C.BIO_new(C.BIO_s_mem())
  if bio == nil then
    return nil
  end
  return ffi_gc(bio, C.BIO_free)
end

--- A read-only memory BIO over `s` (freed when collected; keep `s` alive).
function M.read_bio(s)
  local bio = C.BIO_new_mem_buf(s, #s)
  if bio == nil then
    return nil
  end
  return ffi_gc(bio, C.BIO_free)
end

--- Frees memory OpenSSL allocated (OPENSSL_free).
function M.free(p)
  C.CRYPTO_free(p, "tollgate", 0)
end

--- One-shot digest of `s` with a named digest; binary string or nil.
function M.digest(name, s)
  local md = M.md(name)
  if not md then
    return nil
  end
  local ctx = C.EVP_MD_CTX_new()
  if ctx == nil then
    return nil
  end
  local out = M.buf(64)
  local n = M.uint()
  local ok = C.EVP_DigestInit_ex(ctx, md, nil) == 1 and C.EVP_DigestUpdate(ctx, s, #s) == 1
             and C.EVP_DigestFinal_ex(ctx, out, n) == 1
  C.EVP_MD_CTX_free(ctx)
  if not ok then
    C.ERR_clear_error()
    return nil
  end
  return ffi_str(out, n[0])
end

--- HMAC of `data` keyed by `key` with a named digest; binary string or nil.
function M.hmac(name, key, data)
  local md = M.md(name)
  if not md then
    return nil
  end
  local out = M.buf(64)
  local n = M.uint()
  if C.HMAC(md, key, #key, data, #data, out, n) == nil then
    C.ERR_clear_error()
    return nil
  end
  return ffi_str(out, n[0])
end

--- Lower-case hex of a binary string.
function M.to_hex(s)
  s = tostring(s)
  local n = #s
  if n == 0 then
    return ""
  end
  local b = M.buf(n * 2 + 1)
  local len = M.size_t()
  if C.OPENSSL_buf2hexstr_ex(ffi.cast("char *", b), n * 2 + 1, len, s, n, 0) ~= 1 then
    C.ERR_clear_error()
    return nil
  end
  return (ffi_str(b, n * 2):lower())
end

-- base64 with nginx's rules: `url` selects the URL-safe alphabet; encoding
-- pads unless `no_padding`; decoding stops at the first '=' (as
-- ngx_decode_base64 does), takes unpadded input, refuses anything else.
function M.b64_encode(s, no_padding, url)
  local n = #s
  if n == 0 then
    return ""
  end
  local b = M.buf(math.floor((n + 2) / 3) * 4 + 1)
  local len = C.EVP_EncodeBlock(b, s, n)
  local out = ffi_str(b, len)
  if url then
    out = out:gsub("[+/=]", { ["+"] = "-", ["/"] = "_", ["="] = "" })
  elseif no_padding then
    out = out:gsub("=+$", "")
  end
  return out
end

function M.b64_decode(s, url)
  local eq = s:find("=", 1, true)
  if eq then
    s = s:sub(1, eq - 1)
  end
  if url then
    if s:find("[^%w%-_]") then
      return nil
    end
    s = s:gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
  elseif s:find("[^%w+/]") then
    return nil
  end
  local n = #s
  local rem = n % 4
  if rem == 1 then
    return nil
  end
  if n == 0 then
    return ""
  end
  local pad = rem == 0 and 0 or 4 - rem
  if pad > 0 then
    s = s .. ("="):rep(pad)
  end
  local b = M.buf(#s)
  local len = C.EVP_DecodeBlock(b, s, #s)
  if len < 0 then
    return nil
  end
  return ffi_str(b, len - pad)
end

-- Shared by the resty.openssl classes ------------------------------------

--- An istype(l) function for the instances of metatable `mt`.
function M.istype(mt)
  return function(l)
    return type(l) == "table" and getmetatable(l) == mt
  end
end

--- The name of an OSSL_PROVIDER* ("default"...), nil for NULL.
function M.provider_name(p)
  if p == nil then
    return nil
  end
  return ffi_str(C.OSSL_PROVIDER_get0_name(p))
end

--- Adds update(...) and final(s?) to a streaming class (digest, hmac, mac):
-- `feed(ctx, s, len)` returns 1 on success, `finish(self)` the result or nil.
-- Errors are nil, "<name>:update: ..." / "<name>:final: ...".
function M.streaming(cls, name, feed, finish)
  function cls:update(...)
    for i = 1, select("#", ...) do
      local s = select(i, ...)
      if type(s) ~= "string" then
        s = tostring(s)
      end
      if feed(self.ctx, s, #s) ~= 1 then
        return nil, M.err(name .. ":update")
      end
    end
    return true
  end

  function cls:final(s)
    if s then
      local ok, err = self:update(s)
      if not ok then
        return nil, err
      end
    end
    local out = finish(self)
    if not out then
      return nil, M.err(name .. ":final")
    end
    return out
  end
end

--- Makes `cls` a stack-like class (x509.name, x509.altname): each(),
-- count(), tostring() ("k=text(v)" sorted, joined with "/") and the
-- __pairs/__len/__tostring metamethods of `mt`, over `count(ctx)` and
-- `value_at(ctx, i0)` -> k, v. Returns the iterator maker.
function M.stack_like(cls, mt, count, value_at, text)
  local function iter(self)
    local i, n = 0, count(self.ctx)
    return function()
      i = i + 1
      if i <= n then
        return value_at(self.ctx, i - 1)
      end
    end
  end
  mt.__pairs = iter
  mt.__len = function(self)
    return count(self.ctx)
  end
  cls.each = iter
  function cls:count()
    return count(self.ctx)
  end
  function cls:tostring()
    local values = {}
    for k, v in iter(self) do
      values[#values + 1] = k .. "=" .. text(v)
    end
    table.sort(values)
    return table.concat(values, "/")
  end
  mt.__tostring = cls.tostring
  return iter
end

--- zlib's CRC-32 of `s` (an unsigned number).
function M.crc32(s)
  return tonumber(Z.crc32(0, s, #s))
end

return M
