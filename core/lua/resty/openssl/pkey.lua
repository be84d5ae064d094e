-- resty.openssl.pkey (lua-resty-openssl's API) over EVP_PKEY with OpenSSL 3's
-- decoders and encoders: new (PEM/DER load, RSA/EC/DH/EdDSA/any named type
-- generation, keys on paramgen's parameters), paramgen, istype,
-- get_provider_name, get_parameters, is_private, get_key_type, get_size,
-- get_default_digest_type, sign, verify (named digest or a digest instance;
-- RSA paddings, PSS salt length, raw ECDSA), encrypt, decrypt, sign_raw,
-- verify_raw, verify_recover, derive, encapsulate, decapsulate, tostring and
-- to_PEM, and the generic parameter getters/setters. Not provided: JWK input
-- and output, composing a key from parameters, set_parameters.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"
local bn = require "resty.openssl.bn"
local digest_mod = require "resty.openssl.digest"
local param = require "tollgate.openssl_param"

ffi.cdef [[
OSSL_DECODER_CTX *OSSL_DECODER_CTX_new_for_pkey(EVP_PKEY **pkey, const char *input_type,
    const char *input_struct, const char *keytype, int selection, OSSL_LIB_CTX *libctx,
    const char *propquery);
int OSSL_DECODER_CTX_set_passphrase(OSSL_DECODER_CTX *ctx, const unsigned char *kstr, size_t klen);
int OSSL_DECODER_from_data(OSSL_DECODER_CTX *ctx, const unsigned char **pdata, size_t *pdata_len);
void OSSL_DECODER_CTX_free(OSSL_DECODER_CTX *ctx);
OSSL_ENCODER_CTX *OSSL_ENCODER_CTX_new_for_pkey(const EVP_PKEY *pkey, int selection,
    const char *output_type, const char *output_struct, const char *propquery);
int OSSL_ENCODER_to_data(OSSL_ENCODER_CTX *ctx, unsigned char **pdata, size_t *pdata_len);
void OSSL_ENCODER_CTX_free(OSSL_ENCODER_CTX *ctx);

void EVP_PKEY_free(EVP_PKEY *key);
int EVP_PKEY_up_ref(EVP_PKEY *key);
int EVP_PKEY_get_base_id(const EVP_PKEY *pkey);
int EVP_PKEY_get_size(const EVP_PKEY *pkey);
int EVP_PKEY_get_bits(const EVP_PKEY *pkey);
const char *EVP_PKEY_get0_type_name(const EVP_PKEY *key);
const OSSL_PROVIDER *EVP_PKEY_get0_provider(const EVP_PKEY *key);
int EVP_PKEY_get_default_digest_name(EVP_PKEY *pkey, char *mdname, size_t mdname_sz);
int EVP_PKEY_get_bn_param(const EVP_PKEY *pkey, const char *key_name, BIGNUM **bn);
int EVP_PKEY_get_utf8_string_param(const EVP_PKEY *pkey, const char *key_name, char *str,
                                   size_t max_buf_sz, size_t *out_sz);
int EVP_PKEY_get_octet_string_param(const EVP_PKEY *pkey, const char *key_name,
                                    unsigned char *buf, size_t max_buf_sz, size_t *out_sz);
int EVP_PKEY_get_raw_public_key(const EVP_PKEY *pkey, unsigned char *pub, size_t *len);
int EVP_PKEY_get_raw_private_key(const EVP_PKEY *pkey, unsigned char *priv, size_t *len);

EVP_PKEY_CTX *EVP_PKEY_CTX_new_from_name(OSSL_LIB_CTX *libctx, const char *name,
                                         const char *propquery);
void EVP_PKEY_CTX_free(EVP_PKEY_CTX *ctx);
int EVP_PKEY_keygen_init(EVP_PKEY_CTX *ctx);
int EVP_PKEY_generate(EVP_PKEY_CTX *ctx, EVP_PKEY **ppkey);
int EVP_PKEY_CTX_set_rsa_keygen_bits(EVP_PKEY_CTX *ctx, int mbits);
int EVP_PKEY_CTX_set1_rsa_keygen_pubexp(EVP_PKEY_CTX *ctx, BIGNUM *pubexp);
int EVP_PKEY_CTX_set_group_name(EVP_PKEY_CTX *ctx, const char *name);
int EVP_PKEY_CTX_set_rsa_padding(EVP_PKEY_CTX *ctx, int pad_mode);
int EVP_PKEY_CTX_set_rsa_pss_saltlen(EVP_PKEY_CTX *ctx, int saltlen);
int EVP_PKEY_CTX_ctrl_str(EVP_PKEY_CTX *ctx, const char *type, const char *value);
EVP_PKEY_CTX *EVP_PKEY_CTX_new(EVP_PKEY *pkey, ENGINE *e);
EVP_PKEY_CTX *EVP_PKEY_CTX_new_from_pkey(OSSL_LIB_CTX *libctx, EVP_PKEY *pkey,
                                         const char *propquery);
int EVP_PKEY_paramgen_init(EVP_PKEY_CTX *ctx);
int EVP_PKEY_paramgen(EVP_PKEY_CTX *ctx, EVP_PKEY **ppkey);
int EVP_PKEY_CTX_set_dh_paramgen_prime_len(EVP_PKEY_CTX *ctx, int pbits);
int PEM_write_bio_Parameters(BIO *bp, const EVP_PKEY *x);
int EVP_PKEY_encrypt_init(EVP_PKEY_CTX *ctx);
int EVP_PKEY_encrypt(EVP_PKEY_CTX *ctx, unsigned char *out, size_t *outlen,
                     const unsigned char *in, size_t inlen);
int EVP_PKEY_decrypt_init(EVP_PKEY_CTX *ctx);
int EVP_PKEY_decrypt(EVP_PKEY_CTX *ctx, unsigned char *out, size_t *outlen,
                     const unsigned char *in, size_t inlen);
int EVP_PKEY_sign_init(EVP_PKEY_CTX *ctx);
int EVP_PKEY_sign(EVP_PKEY_CTX *ctx, unsigned char *sig, size_t *siglen,
                  const unsigned char *tbs, size_t tbslen);
int EVP_PKEY_verify_init(EVP_PKEY_CTX *ctx);
int EVP_PKEY_verify(EVP_PKEY_CTX *ctx, const unsigned char *sig, size_t siglen,
                    const unsigned char *tbs, size_t tbslen);
int EVP_PKEY_verify_recover_init(EVP_PKEY_CTX *ctx);
int EVP_PKEY_verify_recover(EVP_PKEY_CTX *ctx, unsigned char *rout, size_t *routlen,
                            const unsigned char *sig, size_t siglen);
int EVP_PKEY_CTX_set_signature_md(EVP_PKEY_CTX *ctx, const EVP_MD *md);
int EVP_PKEY_derive_init(EVP_PKEY_CTX *ctx);
int EVP_PKEY_derive_set_peer(EVP_PKEY_CTX *ctx, EVP_PKEY *peer);
int EVP_PKEY_derive(EVP_PKEY_CTX *ctx, unsigned char *key, size_t *keylen);
int EVP_PKEY_encapsulate_init(EVP_PKEY_CTX *ctx, const void *params);
int EVP_PKEY_encapsulate(EVP_PKEY_CTX *ctx, unsigned char *wrappedkey, size_t *wrappedkeylen,
                         unsigned char *genkey, size_t *genkeylen);
int EVP_PKEY_decapsulate_init(EVP_PKEY_CTX *ctx, const void *params);
int EVP_PKEY_decapsulate(EVP_PKEY_CTX *ctx, unsigned char *unwrapped, size_t *unwrappedlen,
                         const unsigned char *wrapped, size_t wrappedlen);
int EVP_PKEY_CTX_set_kem_op(EVP_PKEY_CTX *ctx, const char *op);
const OSSL_PARAM *EVP_PKEY_gettable_params(const EVP_PKEY *pkey);
const OSSL_PARAM *EVP_PKEY_settable_params(const EVP_PKEY *pkey);
int EVP_PKEY_get_params(const EVP_PKEY *pkey, OSSL_PARAM params[]);
int EVP_PKEY_set_params(EVP_PKEY *pkey, OSSL_PARAM params[]);

int EVP_DigestSignInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type,
                       ENGINE *e, EVP_PKEY *pkey);
int EVP_DigestSign(EVP_MD_CTX *ctx, unsigned char *sigret, size_t *siglen,
                   const unsigned char *tbs, size_t tbslen);
int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type,
                         ENGINE *e, EVP_PKEY *pkey);
int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sigret, size_t siglen,
                     const unsigned char *tbs, size_t tbslen);
int EVP_SignFinal(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s, EVP_PKEY *pkey);
int EVP_VerifyFinal(EVP_MD_CTX *ctx, const unsigned char *sigbuf, unsigned int siglen,
                    EVP_PKEY *pkey);

ECDSA_SIG *ECDSA_SIG_new(void);
void ECDSA_SIG_free(ECDSA_SIG *sig);
ECDSA_SIG *d2i_ECDSA_SIG(ECDSA_SIG **sig, const unsigned char **pp, long len);
int i2d_ECDSA_SIG(const ECDSA_SIG *sig, unsigned char **pp);
void ECDSA_SIG_get0(const ECDSA_SIG *sig, const BIGNUM **pr, const BIGNUM **ps);
int ECDSA_SIG_set0(ECDSA_SIG *sig, BIGNUM *r, BIGNUM *s);

ASN1_OBJECT *OBJ_nid2obj(int n);
const char *OBJ_nid2sn(int n);
const char *OBJ_nid2ln(int n);
int OBJ_txt2nid(const char *s);
int EC_curve_nist2nid(const char *name);
int OBJ_obj2txt(char *buf, int buf_len, const ASN1_OBJECT *a, int no_name);
]]

local C = ossl.C
local ffi_gc = ffi.gc
local ffi_new = ffi.new
local ffi_str = ffi.string
local ffi_cast = ffi.cast
local type = type
local setmetatable = setmetatable

-- OpenSSL 3 selections
local SEL_PUBLIC = 0x86  -- EVP_PKEY_PUBLIC_KEY
local SEL_KEYPAIR = 0x87 -- EVP_PKEY_KEYPAIR

local EVP_PKEY_RSA, EVP_PKEY_RSA_PSS, EVP_PKEY_EC = 6, 912, 408
local EVP_PKEY_DH, EVP_PKEY_DSA = 28, 116
local EVP_PKEY_ED25519, EVP_PKEY_ED448 = 1087, 1088

local _M = {}
local mt = { __index = _M }

_M.PADDINGS = {
  RSA_PKCS1_PADDING = 1,
  RSA_SSLV23_PADDING = 2,
  RSA_NO_PADDING = 3,
  RSA_PKCS1_OAEP_PADDING = 4,
  RSA_X931_PADDING = 5,
  RSA_PKCS1_PSS_PADDING = 6,
}

local function wrap(ptr)
  local self = setmetatable({ ctx = ffi_gc(ptr, C.EVP_PKEY_free) }, mt)
  self.key_type = C.EVP_PKEY_get_base_id(ptr)
  return self
end

-- nid -> { id, nid, sn, ln }
local function nid_table(nid)
  if nid == 0 then
    return nil
  end
  local obj = C.OBJ_nid2obj(nid)
  local b = ossl.buf(128)
  local id
  if obj ~= nil then
    local n = C.OBJ_obj2txt(ffi_cast("char *", b), 128, obj, 1)
    id = n > 0 and ffi_str(b, n) or nil
  end
  local sn, ln = C.OBJ_nid2sn(nid), C.OBJ_nid2ln(nid)
  return { id = id, nid = nid, sn = sn ~= nil and ffi_str(sn) or nil,
           ln = ln ~= nil and ffi_str(ln) or nil }
end
_M.nid_table = nid_table -- shared with resty.openssl.x509(.name)

local function decode(txt, fmt, selection, passphrase)
  local pp = ffi_new("EVP_PKEY *[1]")
  local dctx = C.OSSL_DECODER_CTX_new_for_pkey(pp, fmt, nil, nil, selection, nil, nil)
  if dctx == nil then
    return nil
  end
  if passphrase then
    C.OSSL_DECODER_CTX_set_passphrase(dctx, passphrase, #passphrase)
  end
  local data = ffi_new("const unsigned char *[1]", ffi_cast("const unsigned char *", txt))
  local len = ossl.size_t(#txt)
  local ok = C.OSSL_DECODER_from_data(dctx, data, len)
  C.OSSL_DECODER_CTX_free(dctx)
  if ok ~= 1 or pp[0] == nil then
    return nil
  end
  return pp[0]
end

local function has_private(p)
  local b = ffi_new("BIGNUM *[1]")
  for _, name in ipairs({ "d", "priv" }) do
    if C.EVP_PKEY_get_bn_param(p, name, b) == 1 then
      C.BN_free(b[0])
      return true
    end
  end
  local len = ossl.size_t()
  if C.EVP_PKEY_get_raw_private_key(p, nil, len) == 1 then
    return true
  end
  C.ERR_clear_error()
  return false
end

local function load(txt, opts)
  local fmt = opts.format or "*"
  local typ = opts.type or "*"
  if fmt == "JWK" then
    return nil, "pkey.new: JWK keys are not supported by tollgate's resty.openssl.pkey"
  end
  if fmt ~= "*" and fmt ~= "PEM" and fmt ~= "DER" then
    return nil, "pkey.new: unknown format \"" .. tostring(fmt) .. "\""
  end
  if typ ~= "*" and typ ~= "pr" and typ ~= "pu" then
    return nil, "pkey.new: unknown type \"" .. tostring(typ) .. "\""
  end
  if fmt == "*" then
    fmt = txt:find("-----BEGIN", 1, true) and "PEM" or "DER"
  end
  local pass = opts.passphrase
  if not pass and opts.passphrase_cb then
    pass = opts.passphrase_cb()
  end
  local p
  if typ ~= "pu" then
    p = decode(txt, fmt, SEL_KEYPAIR, pass)
    if p ~= nil and not has_private(p) then
      C.EVP_PKEY_free(p)
      p = nil
    end
  end
  if not p and typ ~= "pr" then
    p = decode(txt, fmt, SEL_PUBLIC, pass)
  end
  if not p then
    local what = typ == "pr" and "private key" or typ == "pu" and "public key" or "key"
    return nil, ossl.err("pkey.new", "failed to load " .. what .. " as " .. fmt)
  end
  C.ERR_clear_error()
  return wrap(p)
end

-- Applies a generation config (curve, group, bits, exp, raw pkeyopt strings)
-- to a keygen or paramgen context of type `name`.
local function configure_gen(ctx, name, config, where, keygen)
  if name == "RSA" and keygen then
    if C.EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, config.bits or 2048) ~= 1 then
      return nil, ossl.err(where, "bad bits")
    end
    if config.exp then
      local e, err = bn.new(config.exp)
      if not e then
        return nil, err
      end
      if C.EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e.ctx) ~= 1 then
        return nil, ossl.err(where, "bad exp")
      end
    end
  elseif name == "EC" then
    local curve = tostring(config.curve or "prime192v1")
    if C.OBJ_txt2nid(curve) == 0 and C.EC_curve_nist2nid(curve) == 0 then
      C.ERR_clear_error()
      return nil, where .. ": unknown curve \"" .. curve .. "\""
    end
    if C.EVP_PKEY_CTX_set_group_name(ctx, curve) ~= 1 then
      return nil, ossl.err(where, "unknown curve \"" .. curve .. "\"")
    end
  elseif name == "DH" then
    if config.group then
      if C.EVP_PKEY_CTX_set_group_name(ctx, tostring(config.group)) ~= 1 then
        return nil, ossl.err(where, "unknown group \"" .. tostring(config.group) .. "\"")
      end
    elseif not keygen then
      if C.EVP_PKEY_CTX_set_dh_paramgen_prime_len(ctx, config.bits or 2048) ~= 1 then
        return nil, ossl.err(where, "bad bits")
      end
    end
  end
  -- raw pkeyopt strings ("rsa_keygen_bits:4096"), as genpkey's -pkeyopt
  for _, opt in ipairs(config) do
    local k, v = tostring(opt):match("^([^:]+):(.*)$")
    if not k or C.EVP_PKEY_CTX_ctrl_str(ctx, k, v) <= 0 then
      return nil, ossl.err(where, "bad pkeyopt \"" .. tostring(opt) .. "\"")
    end
  end
  return true
end

local function type_name(typ)
  local utyp = typ:upper()
  return (utyp == "RSA" or utyp == "EC" or utyp == "DH" or utyp == "DSA") and utyp or typ
end

local function generate(config)
  local typ = config.type or "RSA"
  if type(typ) ~= "string" then
    return nil, "pkey.new: expect a string type"
  end
  local name = type_name(typ)
  local ctx
  if config.param then
    -- a key on the given PEM parameters (from paramgen)
    local pp = ffi_new("EVP_PKEY *[1]")
    local param = tostring(config.param)
    local dctx = C.OSSL_DECODER_CTX_new_for_pkey(pp, "PEM", nil, name, 0x84, nil, nil)
    local data = ffi_new("const unsigned char *[1]", ffi_cast("const unsigned char *", param))
    local ok = dctx ~= nil and C.OSSL_DECODER_from_data(dctx, data, ossl.size_t(#param)) == 1
    if dctx ~= nil then
      C.OSSL_DECODER_CTX_free(dctx)
    end
    if not ok or pp[0] == nil then
      return nil, ossl.err("pkey.new", "bad param")
    end
    local params = ffi_gc(pp[0], C.EVP_PKEY_free)
    ctx = C.EVP_PKEY_CTX_new_from_pkey(nil, params, nil)
  else
    ctx = C.EVP_PKEY_CTX_new_from_name(nil, name, nil)
  end
  if ctx == nil then
    return nil, ossl.err("pkey.new", "unsupported key type \"" .. typ .. "\"")
  end
  ctx = ffi_gc(ctx, C.EVP_PKEY_CTX_free)
  if C.EVP_PKEY_keygen_init(ctx) ~= 1 then
    return nil, ossl.err("pkey.new")
  end
  if not config.param then
    local ok, err = configure_gen(ctx, name, config, "pkey.new", true)
    if not ok then
      return nil, err
    end
  end
  local pp = ffi_new("EVP_PKEY *[1]")
  if C.EVP_PKEY_generate(ctx, pp) ~= 1 or pp[0] == nil then
    return nil, ossl.err("pkey.new")
  end
  return wrap(pp[0])
end

--- EC or DH parameters as PEM text: {type="EC", curve} (default prime192v1)
-- or {type="DH", group | bits}; or nil, err.
function _M.paramgen(config)
  if type(config) ~= "table" then
    return nil, "pkey.paramgen: expect a table at #1"
  end
  local name = type_name(tostring(config.type))
  if name ~= "EC" and name ~= "DH" then
    return nil, "pkey.paramgen: unsupported type " .. tostring(config.type)
  end
  local ctx = ffi_gc(C.EVP_PKEY_CTX_new_from_name(nil, name, nil), C.EVP_PKEY_CTX_free)
  if C.EVP_PKEY_paramgen_init(ctx) ~= 1 then
    return nil, ossl.err("pkey.paramgen")
  end
  local ok, err = configure_gen(ctx, name, config, "pkey.paramgen", false)
  if not ok then
    return nil, err
  end
  local pp = ffi_new("EVP_PKEY *[1]")
  if C.EVP_PKEY_paramgen(ctx, pp) ~= 1 or pp[0] == nil then
    return nil, ossl.err("pkey.paramgen")
  end
  local params = ffi_gc(pp[0], C.EVP_PKEY_free)
  local bio = ossl.mem_bio()
  if C.PEM_write_bio_Parameters(bio, params) ~= 1 then
    return nil, ossl.err("pkey.paramgen")
  end
  return ossl.bio_string(bio)
end

--- A key loaded from PEM or DER text (`opts`: format, type, passphrase,
-- passphrase_cb) or generated from a config table ({type="RSA", bits, exp},
-- {type="EC", curve}, {type="Ed25519"}...; nil: RSA 2048); or nil, err.
function _M.new(s, opts)
  if type(s) == "string" then
    return load(s, opts or {})
  elseif s == nil or type(s) == "table" then
    if s and s.params then
      return nil, "pkey.new: composing a key from params is not supported by tollgate"
    end
    return generate(s or {})
  elseif type(s) == "cdata" then
    if C.EVP_PKEY_up_ref(s) ~= 1 then
      return nil, ossl.err("pkey.new")
    end
    return wrap(s)
  end
  return nil, "pkey.new: unexpected type " .. type(s) .. " at #1"
end

--- true when `l` is a pkey instance.
_M.istype = ossl.istype(mt)

--- The name of the key's provider ("default"...).
function _M:get_provider_name()
  return ossl.provider_name(C.EVP_PKEY_get0_provider(self.ctx))
end

--- true for a private key, false for a public one.
function _M:is_private()
  return has_private(self.ctx)
end

--- The key type as { id, nid, sn, ln } (or the nid alone with `nid_only`).
function _M:get_key_type(nid_only)
  if nid_only then
    return self.key_type
  end
  local t = nid_table(self.key_type)
  if not t then
    return nil, "pkey:get_key_type: key type has no NID"
  end
  return t
end

--- The maximum output size of the key's operations (bytes).
function _M:get_size()
  local n = C.EVP_PKEY_get_size(self.ctx)
  if n <= 0 then
    return nil, ossl.err("pkey:get_size")
  end
  return n
end

--- The key's default digest as { id, nid, sn, ln, mandatory }.
function _M:get_default_digest_type()
  local b = ossl.buf(80)
  local r = C.EVP_PKEY_get_default_digest_name(self.ctx, ffi_cast("char *", b), 80)
  if r <= 0 then
    return nil, ossl.err("pkey:get_default_digest_type")
  end
  local name = ffi_str(ffi_cast("char *", b))
  local t = nid_table(C.OBJ_txt2nid(name)) or { sn = name, ln = name, nid = 0 }
  t.mandatory = r == 2
  return t
end

local function bn_param(p, name)
  local b = ffi_new("BIGNUM *[1]")
  if C.EVP_PKEY_get_bn_param(p, name, b) ~= 1 then
    C.ERR_clear_error()
    return nil
  end
  local r = bn.dup(b[0])
  C.BN_free(b[0])
  return r
end

--- The key's parameters: RSA n, e, d, p, q, dmp1, dmq1, iqmp (bn); EC group
-- (nid), pub, x, y, private (bn); Ed/X keys public, private (binary).
function _M:get_parameters()
  local p, kt = self.ctx, self.key_type
  if kt == EVP_PKEY_RSA or kt == EVP_PKEY_RSA_PSS then
    return {
      n = bn_param(p, "n"), e = bn_param(p, "e"), d = bn_param(p, "d"),
      p = bn_param(p, "rsa-factor1"), q = bn_param(p, "rsa-factor2"),
      dmp1 = bn_param(p, "rsa-exponent1"), dmq1 = bn_param(p, "rsa-exponent2"),
      iqmp = bn_param(p, "rsa-coefficient1"),
    }
  elseif kt == EVP_PKEY_EC then
    local b = ossl.buf(256)
    local n = ossl.size_t()
    local group, pub
    if C.EVP_PKEY_get_utf8_string_param(p, "group", ffi_cast("char *", b), 256, n) == 1 then
      group = C.OBJ_txt2nid(ffi_str(b, n[0]))
    end
    if C.EVP_PKEY_get_octet_string_param(p, "pub", b, 256, n) == 1 then
      pub = bn.from_binary(ffi_str(b, n[0]))
    end
    C.ERR_clear_error()
    return { group = group, pub = pub, x = bn_param(p, "qx"), y = bn_param(p, "qy"),
             private = bn_param(p, "priv") }
  elseif kt == EVP_PKEY_DH or kt == EVP_PKEY_DSA then
    return { p = bn_param(p, "p"), q = bn_param(p, "q"), g = bn_param(p, "g"),
             public = bn_param(p, "pub"), private = bn_param(p, "priv") }
  end
  local out = {}
  local n = ossl.size_t(256)
  local b = ossl.buf(256)
  if C.EVP_PKEY_get_raw_public_key(p, b, n) == 1 then
    out.public = ffi_str(b, n[0])
  end
  n[0] = 256
  if C.EVP_PKEY_get_raw_private_key(p, b, n) == 1 then
    out.private = ffi_str(b, n[0])
  end
  C.ERR_clear_error()
  return out
end

-- ECDSA signatures: DER <-> r||s (JWS)
local function ecdsa_der_to_raw(der, size)
  local pp = ffi_new("const unsigned char *[1]", ffi_cast("const unsigned char *", der))
  local sig = C.d2i_ECDSA_SIG(nil, pp, #der)
  if sig == nil then
    return nil
  end
  local r, s = ffi_new("const BIGNUM *[1]"), ffi_new("const BIGNUM *[1]")
  C.ECDSA_SIG_get0(sig, r, s)
  local b = ossl.buf(size * 2)
  C.BN_bn2binpad(r[0], b, size)
  C.BN_bn2binpad(s[0], b + size, size)
  local out = ffi_str(b, size * 2)
  C.ECDSA_SIG_free(sig)
  return out
end

local function ecdsa_raw_to_der(raw)
  local half = #raw / 2
  if half ~= math.floor(half) or half == 0 then
    return nil
  end
  local r = C.BN_bin2bn(raw, half, nil)
  local s = C.BN_bin2bn(ffi_cast("const unsigned char *", raw) + half, half, nil)
  local sig = C.ECDSA_SIG_new()
  C.ECDSA_SIG_set0(sig, r, s) -- sig owns r and s
  local n = C.i2d_ECDSA_SIG(sig, nil)
  local b = ossl.buf(n)
  local pp = ffi_new("unsigned char *[1]", b)
  C.i2d_ECDSA_SIG(sig, pp)
  C.ECDSA_SIG_free(sig)
  return ffi_str(b, n)
end

local function ec_size(self)
  return math.floor((C.EVP_PKEY_get_bits(self.ctx) + 7) / 8)
end

local function setup_pctx(pctx, padding, opts, where)
  if padding then
    if C.EVP_PKEY_CTX_set_rsa_padding(pctx, padding) <= 0 then
      return nil, ossl.err(where, "bad padding")
    end
  end
  if opts then
    if opts.pss_saltlen then
      if C.EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, opts.pss_saltlen) <= 0 then
        return nil, ossl.err(where, "bad pss_saltlen")
      end
    end
    for k, v in pairs({ mgf1_md = "rsa_mgf1_md", oaep_md = "rsa_oaep_md" }) do
      if opts[k] and C.EVP_PKEY_CTX_ctrl_str(pctx, v, opts[k]) <= 0 then
        return nil, ossl.err(where, "bad " .. k)
      end
    end
    for _, opt in ipairs(opts) do
      local k, v = tostring(opt):match("^([^:]+):(.*)$")
      if not k or C.EVP_PKEY_CTX_ctrl_str(pctx, k, v) <= 0 then
        return nil, ossl.err(where, "bad pkeyopt \"" .. tostring(opt) .. "\"")
      end
    end
  end
  return true
end

local function is_eddsa(self)
  return self.key_type == EVP_PKEY_ED25519 or self.key_type == EVP_PKEY_ED448
end

local function pick_md(self, md_alg, where)
  if md_alg == nil then
    if is_eddsa(self) then
      return nil
    end
    md_alg = "sha256"
  end
  local md = ossl.md(md_alg)
  if not md then
    return false, string.format("%s: invalid digest type \"%s\"", where, tostring(md_alg))
  end
  return md
end

--- Signs `message` (a string, digested with `md_alg`, default SHA256; none for
-- EdDSA) or an updated digest instance; the signature, or nil, err.
function _M:sign(message, md_alg, padding, opts)
  local sig
  if digest_mod.istype(message) then
    local b = ossl.buf(C.EVP_PKEY_get_size(self.ctx))
    local n = ossl.uint()
    if C.EVP_SignFinal(message.ctx, b, n, self.ctx) ~= 1 then
      return nil, ossl.err("pkey:sign")
    end
    sig = ffi_str(b, n[0])
  elseif type(message) == "string" then
    local md, err = pick_md(self, md_alg, "pkey:sign")
    if md == false then
      return nil, err
    end
    local mctx = ffi_gc(C.EVP_MD_CTX_new(), C.EVP_MD_CTX_free)
    local pctx = ffi_new("EVP_PKEY_CTX *[1]")
    if C.EVP_DigestSignInit(mctx, pctx, md, nil, self.ctx) ~= 1 then
      return nil, ossl.err("pkey:sign")
    end
    local ok, perr = setup_pctx(pctx[0], padding, opts, "pkey:sign")
    if not ok then
      return nil, perr
    end
    local len = ossl.size_t()
    if C.EVP_DigestSign(mctx, nil, len, message, #message) ~= 1 then
      return nil, ossl.err("pkey:sign")
    end
    local b = ossl.buf(tonumber(len[0]))
    if C.EVP_DigestSign(mctx, b, len, message, #message) ~= 1 then
      return nil, ossl.err("pkey:sign")
    end
    sig = ffi_str(b, len[0])
  else
    return nil, "pkey:sign: expect a digest instance or a string at #1"
  end
  if opts and opts.ecdsa_use_raw and self.key_type == EVP_PKEY_EC then
    sig = ecdsa_der_to_raw(sig, ec_size(self))
    if not sig then
      return nil, ossl.err("pkey:sign", "failed to convert the ECDSA signature")
    end
  end
  return sig
end

--- Verifies `signature` over `message` (string or updated digest instance):
-- true, or false, err.
function _M:verify(signature, message, md_alg, padding, opts)
  if type(signature) ~= "string" then
    return false, "pkey:verify: expect a string at #1"
  end
  if opts and opts.ecdsa_use_raw and self.key_type == EVP_PKEY_EC then
    signature = ecdsa_raw_to_der(signature)
    if not signature then
      return false, "pkey:verify: invalid raw ECDSA signature"
    end
  end
  local code
  if digest_mod.istype(message) then
    code = C.EVP_VerifyFinal(message.ctx, signature, #signature, self.ctx)
  elseif type(message) == "string" then
    local md, err = pick_md(self, md_alg, "pkey:verify")
    if md == false then
      return false, err
    end
    local mctx = ffi_gc(C.EVP_MD_CTX_new(), C.EVP_MD_CTX_free)
    local pctx = ffi_new("EVP_PKEY_CTX *[1]")
    if C.EVP_DigestVerifyInit(mctx, pctx, md, nil, self.ctx) ~= 1 then
      return false, ossl.err("pkey:verify")
    end
    local ok, perr = setup_pctx(pctx[0], padding, opts, "pkey:verify")
    if not ok then
      return false, perr
    end
    code = C.EVP_DigestVerify(mctx, signature, #signature, message, #message)
  else
    return false, "pkey:verify: expect a digest instance or a string at #2"
  end
  if code == 1 then
    C.ERR_clear_error()
    return true
  end
  return false, ossl.err("pkey:verify", "signature verification failed")
end

-- ------------------------------------------------ raw operations, KEM, ECDH --

-- Runs a one-input EVP_PKEY operation: init(ctx), then op(ctx, out, &outlen,
-- in, inlen) sized by a first call. `setup(ctx)` may set more options.
local function pkey_op(self, where, init, op, input, padding, opts, setup, properties)
  if type(input) ~= "string" then
    return nil, where .. ": expect a string at #1"
  end
  local ctx = C.EVP_PKEY_CTX_new_from_pkey(nil, self.ctx, properties)
  if ctx == nil then
    return nil, ossl.err(where)
  end
  ctx = ffi_gc(ctx, C.EVP_PKEY_CTX_free)
  if init(ctx) ~= 1 then
    return nil, ossl.err(where)
  end
  local ok, err = setup_pctx(ctx, padding, opts, where)
  if not ok then
    return nil, err
  end
  if setup then
    ok, err = setup(ctx)
    if not ok then
      return nil, err
    end
  end
  local len = ossl.size_t()
  if op(ctx, nil, len, input, #input) ~= 1 then
    return nil, ossl.err(where)
  end
  local b = ossl.buf(tonumber(len[0]))
  if op(ctx, b, len, input, #input) ~= 1 then
    return nil, ossl.err(where)
  end
  return ffi_str(b, len[0])
end

local RSA_PKCS1 = 1

--- Public-key encryption (RSA; default PKCS#1 v1.5 padding); or nil, err.
function _M:encrypt(s, padding, opts)
  return pkey_op(self, "pkey:encrypt", C.EVP_PKEY_encrypt_init, C.EVP_PKEY_encrypt, s,
                 padding or RSA_PKCS1, opts)
end

--- Private-key decryption (RSA; default PKCS#1 v1.5 padding); or nil, err.
function _M:decrypt(s, padding, opts)
  return pkey_op(self, "pkey:decrypt", C.EVP_PKEY_decrypt_init, C.EVP_PKEY_decrypt, s,
                 padding or RSA_PKCS1, opts)
end

--- Signs `s` as it is, without digesting it ("private encrypt" for RSA;
-- default PKCS#1 v1.5 padding); or nil, err.
function _M:sign_raw(s, padding, opts)
  local pad = self.key_type == EVP_PKEY_RSA and (padding or RSA_PKCS1) or padding
  return pkey_op(self, "pkey:sign_raw", C.EVP_PKEY_sign_init, C.EVP_PKEY_sign, s, pad, opts)
end

--- Recovers the data signed by sign_raw ("public decrypt", RSA only); or nil, err.
function _M:verify_recover(s, padding, opts)
  return pkey_op(self, "pkey:verify_recover", C.EVP_PKEY_verify_recover_init,
                 C.EVP_PKEY_verify_recover, s, padding or RSA_PKCS1, opts)
end

--- Verifies `signature` over `data`, a digest already computed with `md_alg`
-- (default SHA256 for RSA and EC): true, or false, err.
function _M:verify_raw(signature, data, md_alg, padding, opts)
  if type(signature) ~= "string" or type(data) ~= "string" then
    return false, "pkey:verify_raw: expect strings at #1 and #2"
  end
  local md, err = pick_md(self, md_alg, "pkey:verify_raw")
  if md == false then
    return false, err
  end
  local ctx = C.EVP_PKEY_CTX_new(self.ctx, nil)
  if ctx == nil then
    return false, ossl.err("pkey:verify_raw")
  end
  ctx = ffi_gc(ctx, C.EVP_PKEY_CTX_free)
  if C.EVP_PKEY_verify_init(ctx) ~= 1 then
    return false, ossl.err("pkey:verify_raw")
  end
  if md and C.EVP_PKEY_CTX_set_signature_md(ctx, md) ~= 1 then
    return false, ossl.err("pkey:verify_raw")
  end
  local pad = self.key_type == EVP_PKEY_RSA and (padding or RSA_PKCS1) or padding
  local ok, perr = setup_pctx(ctx, pad, opts, "pkey:verify_raw")
  if not ok then
    return false, perr
  end
  if C.EVP_PKEY_verify(ctx, signature, #signature, data, #data) == 1 then
    C.ERR_clear_error()
    return true
  end
  return false, ossl.err("pkey:verify_raw", "signature verification failed")
end

--- The shared secret of this (private) key with `peer_key` (ECDH, X25519,
-- X448, DH); or nil, err.
function _M:derive(peer_key)
  if not _M.istype(peer_key) then
    return nil, "pkey:derive: expect a pkey instance at #1"
  end
  local ctx = C.EVP_PKEY_CTX_new(self.ctx, nil)
  if ctx == nil then
    return nil, ossl.err("pkey:derive")
  end
  ctx = ffi_gc(ctx, C.EVP_PKEY_CTX_free)
  if C.EVP_PKEY_derive_init(ctx) ~= 1 or C.EVP_PKEY_derive_set_peer(ctx, peer_key.ctx) ~= 1 then
    return nil, ossl.err("pkey:derive")
  end
  local len = ossl.size_t()
  if C.EVP_PKEY_derive(ctx, nil, len) ~= 1 then
    return nil, ossl.err("pkey:derive")
  end
  local b = ossl.buf(tonumber(len[0]))
  if C.EVP_PKEY_derive(ctx, b, len) ~= 1 then
    return nil, ossl.err("pkey:derive")
  end
  return ffi_str(b, len[0])
end

local function kem_ctx(self, where, init, properties)
  local ctx = C.EVP_PKEY_CTX_new_from_pkey(nil, self.ctx, properties)
  if ctx == nil then
    return nil, ossl.err(where)
  end
  ctx = ffi_gc(ctx, C.EVP_PKEY_CTX_free)
  if init(ctx, nil) ~= 1 then
    return nil, ossl.err(where, "the key does not support encapsulation")
  end
  if self.key_type == EVP_PKEY_RSA and C.EVP_PKEY_CTX_set_kem_op(ctx, "RSASVE") ~= 1 then
    return nil, ossl.err(where)
  end
  return ctx
end

--- KEM encapsulation with a public key: wrapped key, shared secret; or nil, err.
function _M:encapsulate(properties)
  local ctx, err = kem_ctx(self, "pkey:encapsulate", C.EVP_PKEY_encapsulate_init, properties)
  if not ctx then
    return nil, err
  end
  local wlen, slen = ossl.size_t(), ossl.size_t()
  if C.EVP_PKEY_encapsulate(ctx, nil, wlen, nil, slen) ~= 1 then
    return nil, ossl.err("pkey:encapsulate")
  end
  local w = ffi_new("unsigned char[?]", tonumber(wlen[0]))
  local s = ffi_new("unsigned char[?]", tonumber(slen[0]))
  if C.EVP_PKEY_encapsulate(ctx, w, wlen, s, slen) ~= 1 then
    return nil, ossl.err("pkey:encapsulate")
  end
  return ffi_str(w, wlen[0]), ffi_str(s, slen[0])
end

--- KEM decapsulation with a private key: the shared secret; or nil, err.
function _M:decapsulate(wrapped, properties)
  local rsa = self.key_type == EVP_PKEY_RSA
  return pkey_op(self, "pkey:decapsulate", function(ctx)
    return C.EVP_PKEY_decapsulate_init(ctx, nil)
  end, C.EVP_PKEY_decapsulate, wrapped, nil, nil, function(ctx)
    if rsa and C.EVP_PKEY_CTX_set_kem_op(ctx, "RSASVE") ~= 1 then
      return nil, ossl.err("pkey:decapsulate")
    end
    return true
  end, properties)
end

--- The public (default) or private key as PEM (default) or DER; PKCS#1
-- structure for RSA with `is_pkcs1`. Or nil, err.
function _M:tostring(private_or_public, fmt, is_pkcs1)
  local priv
  if private_or_public == nil or private_or_public == "public" or
     private_or_public == "PublicKey" then
    priv = false
  elseif private_or_public == "private" or private_or_public == "PrivateKey" then
    priv = true
  else
    return nil, "pkey:tostring: can only export private or public key, not " ..
                tostring(private_or_public)
  end
  fmt = fmt or "PEM"
  if fmt == "JWK" then
    return nil, "pkey:tostring: JWK output is not supported by tollgate"
  elseif fmt ~= "PEM" and fmt ~= "DER" then
    return nil, "pkey:tostring: can only export to PEM or DER, not " .. tostring(fmt)
  end
  if priv and not has_private(self.ctx) then
    return nil, "pkey:tostring: the key is not a private key"
  end
  local structure
  if is_pkcs1 then
    structure = "type-specific"
  else
    structure = priv and "PrivateKeyInfo" or "SubjectPublicKeyInfo"
  end
  local ectx = C.OSSL_ENCODER_CTX_new_for_pkey(self.ctx, priv and SEL_KEYPAIR or SEL_PUBLIC,
                                               fmt, structure, nil)
  if ectx == nil then
    return nil, ossl.err("pkey:tostring")
  end
  local data = ffi_new("unsigned char *[1]")
  local len = ossl.size_t()
  local ok = C.OSSL_ENCODER_to_data(ectx, data, len)
  C.OSSL_ENCODER_CTX_free(ectx)
  if ok ~= 1 or data[0] == nil then
    return nil, ossl.err("pkey:tostring")
  end
  local out = ffi_str(data[0], len[0])
  ossl.free(data[0])
  return out
end

--- tostring(private_or_public, "PEM", is_pkcs1).
function _M:to_PEM(private_or_public, is_pkcs1)
  return self:tostring(private_or_public, "PEM", is_pkcs1)
end

param.install(_M, "pkey", function(self)
  return self.ctx, C.EVP_PKEY_gettable_params, C.EVP_PKEY_settable_params,
         C.EVP_PKEY_get_params, C.EVP_PKEY_set_params
end)

return _M
