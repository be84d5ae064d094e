-- resty.openssl.x509 (lua-resty-openssl's API) over X509: new (PEM/DER or
-- empty), dup, istype, digest, pubkey_digest, check_private_key, getters and
-- setters for subject_name, issuer_name, not_before, not_after, pubkey,
-- serial_number and version, get/set_lifetime, get_signature_name/nid/
-- digest_name, get_ocsp_url, get_crl_url, get/set basic_constraints,
-- subject_alt_name and issuer_alt_name (x509.altname) and their critical
-- flags, get/set_extension_critical, sign, verify, tostring and to_PEM. Not
-- provided: extension objects (get/add/set_extension) and the info_access
-- and crl_distribution_points objects.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"
local bn = require "resty.openssl.bn"
local pkey = require "resty.openssl.pkey"
local name = require "resty.openssl.x509.name"
local digest = require "resty.openssl.digest"
local altname = require "resty.openssl.x509.altname"

ffi.cdef [[
X509 *X509_new(void);
void X509_free(X509 *a);
X509 *X509_dup(const X509 *x);
X509 *PEM_read_bio_X509(BIO *bp, X509 **x, void *cb, void *u);
int PEM_write_bio_X509(BIO *bp, const X509 *x);
X509 *d2i_X509(X509 **px, const unsigned char **in, long len);
int i2d_X509(const X509 *a, unsigned char **out);
int X509_digest(const X509 *data, const EVP_MD *type, unsigned char *md, unsigned int *len);
int X509_pubkey_digest(const X509 *data, const EVP_MD *type, unsigned char *md,
                       unsigned int *len);
int X509_check_private_key(const X509 *x, const EVP_PKEY *k);
X509_NAME *X509_get_subject_name(const X509 *a);
X509_NAME *X509_get_issuer_name(const X509 *a);
int X509_set_subject_name(X509 *x, const X509_NAME *name);
int X509_set_issuer_name(X509 *x, const X509_NAME *name);
const ASN1_TIME *X509_get0_notBefore(const X509 *x);
const ASN1_TIME *X509_get0_notAfter(const X509 *x);
ASN1_TIME *X509_getm_notBefore(const X509 *x);
ASN1_TIME *X509_getm_notAfter(const X509 *x);
ASN1_TIME *ASN1_TIME_set(ASN1_TIME *s, time_t t);
int ASN1_TIME_to_tm(const ASN1_TIME *s, struct tm *tm);
EVP_PKEY *X509_get_pubkey(X509 *x);
int X509_set_pubkey(X509 *x, EVP_PKEY *pkey);
const ASN1_INTEGER *X509_get0_serialNumber(const X509 *x);
ASN1_INTEGER *X509_get_serialNumber(X509 *x);
BIGNUM *ASN1_INTEGER_to_BN(const ASN1_INTEGER *ai, BIGNUM *bn);
ASN1_INTEGER *BN_to_ASN1_INTEGER(const BIGNUM *bn, ASN1_INTEGER *ai);
int X509_set_serialNumber(X509 *x, ASN1_INTEGER *serial);
void ASN1_INTEGER_free(ASN1_INTEGER *a);
long X509_get_version(const X509 *x);
int X509_set_version(X509 *x, long version);
int X509_get_signature_nid(const X509 *x);
int OBJ_find_sigid_algs(int signid, int *pdig_nid, int *ppkey_nid);
int X509_sign(X509 *x, EVP_PKEY *pkey, const EVP_MD *md);
OPENSSL_STACK *X509_get1_ocsp(X509 *x);
void X509_email_free(OPENSSL_STACK *sk);
void *X509_get_ext_d2i(const X509 *x, int nid, int *crit, int *idx);
typedef struct { int ca; ASN1_INTEGER *pathlen; } BASIC_CONSTRAINTS;
void BASIC_CONSTRAINTS_free(BASIC_CONSTRAINTS *a);
long ASN1_INTEGER_get(const ASN1_INTEGER *a);
typedef struct { int type; union { OPENSSL_STACK *fullname; void *relativename; } name;
                 X509_NAME *dpname; } DIST_POINT_NAME;
typedef struct { DIST_POINT_NAME *distpoint; void *reasons; OPENSSL_STACK *CRLissuer;
                 int dp_reasons; } DIST_POINT;
void CRL_DIST_POINTS_free(OPENSSL_STACK *a);
int X509_get_ext_by_NID(const X509 *x, int nid, int lastpos);
void *X509_get_ext(const X509 *x, int loc);
int X509_EXTENSION_get_critical(const void *ex);
int X509_EXTENSION_set_critical(void *ex, int crit);
int X509_add1_ext_i2d(X509 *x, int nid, void *value, int crit, unsigned long flags);
BASIC_CONSTRAINTS *BASIC_CONSTRAINTS_new(void);
ASN1_INTEGER *ASN1_INTEGER_new(void);
int ASN1_INTEGER_set(ASN1_INTEGER *a, long v);
int OBJ_txt2nid(const char *s);
int X509_verify(X509 *a, EVP_PKEY *r);
]]

local C = ossl.C
local ffi_gc = ffi.gc
local ffi_new = ffi.new
local ffi_str = ffi.string
local ffi_cast = ffi.cast
local type = type
local setmetatable = setmetatable

local _M = {}
local mt = { __index = _M }

local function wrap(ptr)
  return setmetatable({ ctx = ffi_gc(ptr, C.X509_free) }, mt)
end

--- A certificate from PEM or DER text (`fmt`: "PEM", "DER" or "*"), or an
-- empty one without `txt`; or nil, err.
function _M.new(txt, fmt)
  if txt == nil then
    local p = C.X509_new()
    if p == nil then
      return nil, ossl.err("x509.new")
    end
    return wrap(p)
  end
  if type(txt) ~= "string" then
    return nil, "x509.new: expect nil or a string at #1"
  end
  fmt = fmt or "*"
  if fmt == "*" then
    fmt = txt:find("-----BEGIN", 1, true) and "PEM" or "DER"
  end
  local p
  if fmt == "PEM" then
    local bio = ossl.read_bio(txt)
    p = C.PEM_read_bio_X509(bio, nil, nil, nil)
  elseif fmt == "DER" then
    local pp = ffi_new("const unsigned char *[1]", ffi_cast("const unsigned char *", txt))
    p = C.d2i_X509(nil, pp, #txt)
  else
    return nil, "x509.new: unknown format \"" .. tostring(fmt) .. "\""
  end
  if p == nil then
    return nil, ossl.err("x509.new")
  end
  C.ERR_clear_error()
  return wrap(p)
end

--- A certificate copied from an X509* cdata.
function _M.dup(ctx)
  if type(ctx) ~= "cdata" then
    return nil, "x509.dup: expect a x509 ctx at #1"
  end
  local p = C.X509_dup(ctx)
  if p == nil then
    return nil, ossl.err("x509.dup")
  end
  return wrap(p)
end

--- true when `l` is an x509 instance.
_M.istype = ossl.istype(mt)

local function digest_of(self, f, digest_name, where)
  local md = ossl.md(digest_name or "sha1")
  if not md then
    return nil, string.format("%s: invalid digest type \"%s\"", where, tostring(digest_name))
  end
  local b = ossl.buf(64)
  local n = ossl.uint()
  if f(self.ctx, md, b, n) ~= 1 then
    return nil, ossl.err(where)
  end
  return ffi_str(b, n[0])
end

--- The digest (default SHA1) of the DER certificate, binary.
function _M:digest(digest_name)
  return digest_of(self, C.X509_digest, digest_name, "x509:digest")
end

--- The digest (default SHA1) of the DER public key, binary.
function _M:pubkey_digest(digest_name)
  return digest_of(self, C.X509_pubkey_digest, digest_name, "x509:pubkey_digest")
end

--- Whether the private key `key` matches the certificate's public key.
function _M:check_private_key(key)
  if not pkey.istype(key) then
    return false, "x509:check_private_key: expect a pkey instance at #1"
  end
  if not key:is_private() then
    return false, "x509:check_private_key: not a private key"
  end
  if C.X509_check_private_key(self.ctx, key.ctx) == 1 then
    return true
  end
  return false, ossl.err("x509:check_private_key")
end

local function get_name(self, f)
  local p = f(self.ctx)
  if p == nil then
    return nil
  end
  return name.dup(p)
end

function _M:get_subject_name()
  return get_name(self, C.X509_get_subject_name)
end

function _M:get_issuer_name()
  return get_name(self, C.X509_get_issuer_name)
end

local function set_name(self, n, f, where)
  if not name.istype(n) then
    return nil, where .. ": expect a x509.name instance at #1"
  end
  if f(self.ctx, n.ctx) ~= 1 then
    return nil, ossl.err(where)
  end
  return true
end

function _M:set_subject_name(n)
  return set_name(self, n, C.X509_set_subject_name, "x509:set_subject_name")
end

function _M:set_issuer_name(n)
  return set_name(self, n, C.X509_set_issuer_name, "x509:set_issuer_name")
end

local function get_time(t)
  if t == nil then
    return nil
  end
  local tm = ffi_new("struct tm")
  if C.ASN1_TIME_to_tm(t, tm) ~= 1 then
    return nil, ossl.err("x509: bad time")
  end
  return tonumber(C.timegm(tm))
end

--- Unix time the certificate is valid from (nil, nil when unset).
function _M:get_not_before()
  return get_time(C.X509_get0_notBefore(self.ctx))
end

--- Unix time the certificate is valid until (nil, nil when unset).
function _M:get_not_after()
  return get_time(C.X509_get0_notAfter(self.ctx))
end

local function set_time(t, v, where)
  if type(v) ~= "number" then
    return nil, where .. ": expect a number at #1"
  end
  if C.ASN1_TIME_set(t, v) == nil then
    return nil, ossl.err(where)
  end
  return true
end

function _M:set_not_before(v)
  return set_time(C.X509_getm_notBefore(self.ctx), v, "x509:set_not_before")
end

function _M:set_not_after(v)
  return set_time(C.X509_getm_notAfter(self.ctx), v, "x509:set_not_after")
end

--- not_before, not_after.
function _M:get_lifetime()
  local nb, err = self:get_not_before()
  if err then
    return nil, nil, err
  end
  local na
  na, err = self:get_not_after()
  if err then
    return nil, nil, err
  end
  return nb, na
end

function _M:set_lifetime(not_before, not_after)
  if not_before then
    local ok, err = self:set_not_before(not_before)
    if not ok then
      return nil, err
    end
  end
  if not_after then
    local ok, err = self:set_not_after(not_after)
    if not ok then
      return nil, err
    end
  end
  return true
end

--- The public key as a pkey (nil, nil when unset).
function _M:get_pubkey()
  local p = C.X509_get_pubkey(self.ctx) -- a new reference
  if p == nil then
    C.ERR_clear_error()
    return nil
  end
  local k, err = pkey.new(p)
  C.EVP_PKEY_free(p) -- pkey.new took its own reference
  return k, err
end

function _M:set_pubkey(key)
  if not pkey.istype(key) then
    return nil, "x509:set_pubkey: expect a pkey instance at #1"
  end
  if C.X509_set_pubkey(self.ctx, key.ctx) ~= 1 then
    return nil, ossl.err("x509:set_pubkey")
  end
  return true
end

--- The serial number as a bn.
function _M:get_serial_number()
  local ai = C.X509_get0_serialNumber(self.ctx)
  if ai == nil then
    return nil
  end
  local p = C.ASN1_INTEGER_to_BN(ai, nil)
  if p == nil then
    return nil, ossl.err("x509:get_serial_number")
  end
  local b = bn.dup(p)
  C.BN_free(p)
  return b
end

function _M:set_serial_number(v)
  if not bn.istype(v) then
    local err
    v, err = bn.new(v)
    if not v then
      return nil, "x509:set_serial_number: " .. tostring(err)
    end
  end
  local ai = C.BN_to_ASN1_INTEGER(v.ctx, nil)
  if ai == nil then
    return nil, ossl.err("x509:set_serial_number")
  end
  local ok = C.X509_set_serialNumber(self.ctx, ai) -- copies
  C.ASN1_INTEGER_free(ai)
  if ok ~= 1 then
    return nil, ossl.err("x509:set_serial_number")
  end
  return true
end

--- The version field (2 means version 3).
function _M:get_version()
  return tonumber(C.X509_get_version(self.ctx))
end

function _M:set_version(v)
  if type(v) ~= "number" then
    return nil, "x509:set_version: expect a number at #1"
  end
  if C.X509_set_version(self.ctx, v) ~= 1 then
    return nil, ossl.err("x509:set_version")
  end
  return true
end

--- The NID of the signature algorithm.
function _M:get_signature_nid()
  local nid = C.X509_get_signature_nid(self.ctx)
  if nid <= 0 then
    return nil, "x509:get_signature_nid: the certificate is not signed"
  end
  return nid
end

--- The short name of the signature algorithm ("RSA-SHA256"...).
function _M:get_signature_name()
  local nid, err = self:get_signature_nid()
  if not nid then
    return nil, err
  end
  return ffi_str(C.OBJ_nid2sn(nid))
end

--- The short name of the signature's digest ("SHA256"...).
function _M:get_signature_digest_name()
  local nid, err = self:get_signature_nid()
  if not nid then
    return nil, err
  end
  local dig = ffi_new("int[1]")
  if C.OBJ_find_sigid_algs(nid, dig, nil) ~= 1 or dig[0] == 0 then
    return nil, "x509:get_signature_digest_name: no digest in " ..
                ffi_str(C.OBJ_nid2sn(nid))
  end
  return ffi_str(C.OBJ_nid2sn(dig[0]))
end

local NID_basic_constraints, NID_crl_distribution_points = 87, 103
local GEN_URI = 6

local function first_or_all(urls, return_all)
  if return_all then
    return urls
  end
  return urls[1]
end

--- The OCSP responder URL (the first, or all of them in a table with
-- `return_all`); nil when the certificate has none.
function _M:get_ocsp_url(return_all)
  local sk = C.X509_get1_ocsp(self.ctx)
  if sk == nil then
    return nil
  end
  local urls = {}
  for i = 0, C.OPENSSL_sk_num(sk) - 1 do
    urls[#urls + 1] = ffi_str(ffi_cast("const char *", C.OPENSSL_sk_value(sk, i)))
  end
  C.X509_email_free(sk)
  return first_or_all(urls, return_all)
end

--- The CRL distribution point URL (the first, or all of them with
-- `return_all`); nil when the certificate has none.
function _M:get_crl_url(return_all)
  local sk = C.X509_get_ext_d2i(self.ctx, NID_crl_distribution_points, nil, nil)
  if sk == nil then
    return nil
  end
  sk = ffi_cast("OPENSSL_STACK *", sk)
  local urls = {}
  for i = 0, C.OPENSSL_sk_num(sk) - 1 do
    local dp = ffi_cast("DIST_POINT *", C.OPENSSL_sk_value(sk, i))
    local dpn = dp.distpoint
    if dpn ~= nil and dpn.type == 0 and dpn.name.fullname ~= nil then -- full names
      local names = dpn.name.fullname
      for j = 0, C.OPENSSL_sk_num(names) - 1 do
        local gn = ffi_cast("GENERAL_NAME *", C.OPENSSL_sk_value(names, j))
        if gn.type == GEN_URI then
          local str = gn.d.ia5
          urls[#urls + 1] = ffi_str(C.ASN1_STRING_get0_data(str), C.ASN1_STRING_length(str))
        end
      end
    end
  end
  C.CRL_DIST_POINTS_free(sk)
  return first_or_all(urls, return_all)
end

--- Basic constraints as { ca = bool, pathlen = int } (or the value of the
-- case-insensitive key `name`); nil, nil when absent.
function _M:get_basic_constraints(name)
  local bc = C.X509_get_ext_d2i(self.ctx, NID_basic_constraints, nil, nil)
  if bc == nil then
    return nil
  end
  bc = ffi_cast("BASIC_CONSTRAINTS *", bc)
  local t = { ca = bc.ca ~= 0 }
  if bc.pathlen ~= nil then
    t.pathlen = tonumber(C.ASN1_INTEGER_get(bc.pathlen))
  end
  C.BASIC_CONSTRAINTS_free(bc)
  if name then
    return t[tostring(name):lower()]
  end
  return t
end

local function nid_of(nid_or_txt)
  if type(nid_or_txt) == "number" then
    return nid_or_txt
  end
  local nid = C.OBJ_txt2nid(tostring(nid_or_txt))
  return nid ~= 0 and nid or nil
end

--- The critical flag of the extension `nid_or_txt` ("basicConstraints", its
-- OID or NID); nil, err when the certificate does not have it.
function _M:get_extension_critical(nid_or_txt)
  local nid = nid_of(nid_or_txt)
  if not nid then
    return nil, "x509:get_extension_critical: invalid NID text " .. tostring(nid_or_txt)
  end
  local loc = C.X509_get_ext_by_NID(self.ctx, nid, -1)
  if loc < 0 then
    return nil, "x509:get_extension_critical: extension not found"
  end
  return C.X509_EXTENSION_get_critical(C.X509_get_ext(self.ctx, loc)) == 1
end

--- The critical flag of the basic constraints extension.
function _M:get_basic_constraints_critical()
  return self:get_extension_critical(NID_basic_constraints)
end

--- Sets the critical flag of the extension `nid_or_txt`; true, or nil, err.
function _M:set_extension_critical(nid_or_txt, crit)
  local nid = nid_of(nid_or_txt)
  if not nid then
    return nil, "x509:set_extension_critical: invalid NID text " .. tostring(nid_or_txt)
  end
  local loc = C.X509_get_ext_by_NID(self.ctx, nid, -1)
  if loc < 0 then
    return nil, "x509:set_extension_critical: extension not found"
  end
  if C.X509_EXTENSION_set_critical(C.X509_get_ext(self.ctx, loc), crit and 1 or 0) ~= 1 then
    return nil, ossl.err("x509:set_extension_critical")
  end
  return true
end

--- Sets the critical flag of the basic constraints extension.
function _M:set_basic_constraints_critical(crit)
  return self:set_extension_critical(NID_basic_constraints, crit)
end

-- adds or replaces the extension `nid` from an OpenSSL structure
local function put_ext(self, nid, value, where)
  if C.X509_add1_ext_i2d(self.ctx, nid, value, 0, 2) ~= 1 then -- X509V3_ADD_REPLACE
    return nil, ossl.err(where)
  end
  return true
end

--- Sets basic constraints from { ca = bool, pathlen = int } (keys
-- case-insensitive); true, or nil, err.
function _M:set_basic_constraints(t)
  if type(t) ~= "table" then
    return nil, "x509:set_basic_constraints: expect a table at #1"
  end
  local ca, pathlen
  for k, v in pairs(t) do
    k = tostring(k):lower()
    if k == "ca" then
      ca = v
    elseif k == "pathlen" then
      pathlen = v
    end
  end
  local bc = ffi_gc(C.BASIC_CONSTRAINTS_new(), C.BASIC_CONSTRAINTS_free)
  bc.ca = ca and 255 or 0
  if pathlen ~= nil then
    bc.pathlen = C.ASN1_INTEGER_new() -- freed with bc
    C.ASN1_INTEGER_set(bc.pathlen, tonumber(pathlen))
  end
  return put_ext(self, NID_basic_constraints, bc, "x509:set_basic_constraints")
end

local function get_altname(self, nid)
  local p = C.X509_get_ext_d2i(self.ctx, nid, nil, nil)
  if p == nil then
    return nil
  end
  return altname.wrap(ffi_cast("OPENSSL_STACK *", p))
end

local function set_altname(self, nid, an, where)
  if not altname.istype(an) then
    return nil, where .. ": expect a x509.altname instance at #1"
  end
  return put_ext(self, nid, an.ctx, where)
end

-- get_/set_ subject_alt_name and issuer_alt_name (x509.altname instances;
-- the getters give nil, nil when absent) and their _critical flags
for attr, nid in pairs({ subject_alt_name = 85, issuer_alt_name = 86 }) do
  _M["get_" .. attr] = function(self)
    return get_altname(self, nid)
  end
  _M["set_" .. attr] = function(self, an)
    return set_altname(self, nid, an, "x509:set_" .. attr)
  end
  _M["get_" .. attr .. "_critical"] = function(self)
    return self:get_extension_critical(nid)
  end
  _M["set_" .. attr .. "_critical"] = function(self, crit)
    return self:set_extension_critical(nid, crit)
  end
end

--- Signs with the private key `key` and a digest instance's algorithm
-- (default SHA256; none for EdDSA keys). true, or false, err.
function _M:sign(key, dgst)
  if not pkey.istype(key) then
    return false, "x509:sign: expect a pkey instance at #1"
  end
  local md
  if dgst ~= nil then
    if not digest.istype(dgst) then
      return false, "x509:sign: expect a digest instance at #2"
    end
    md = dgst.md
  else
    local kt = key:get_key_type(true)
    if kt ~= 1087 and kt ~= 1088 then -- Ed25519, Ed448
      md = ossl.md("sha256")
    end
  end
  if C.X509_sign(self.ctx, key.ctx, md) == 0 then
    return false, ossl.err("x509:sign")
  end
  return true
end

--- Whether the certificate's signature verifies with `key`.
function _M:verify(key)
  if not pkey.istype(key) then
    return false, "x509:verify: expect a pkey instance at #1"
  end
  local r = C.X509_verify(self.ctx, key.ctx)
  if r == 1 then
    return true
  end
  return false, ossl.err("x509:verify")
end

--- The certificate as PEM (default) or DER.
function _M:tostring(fmt)
  fmt = fmt or "PEM"
  if fmt == "PEM" then
    local bio = ossl.mem_bio()
    if not bio or C.PEM_write_bio_X509(bio, self.ctx) ~= 1 then
      return nil, ossl.err("x509:tostring")
    end
    return ossl.bio_string(bio)
  elseif fmt == "DER" then
    local n = C.i2d_X509(self.ctx, nil)
    if n <= 0 then
      return nil, ossl.err("x509:tostring")
    end
    local b = ossl.buf(n)
    local pp = ffi_new("unsigned char *[1]", b)
    C.i2d_X509(self.ctx, pp)
    return ffi_str(b, n)
  end
  return nil, "x509:tostring: can only write PEM or DER format, not " .. tostring(fmt)
end

function _M:to_PEM()
  return self:tostring("PEM")
end

return _M
