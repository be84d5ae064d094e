-- resty.openssl.cipher (lua-resty-openssl's API) over EVP_CIPHER_CTX: new,
-- istype, set_buffer_size, get_provider_name, encrypt, decrypt, init, update,
-- update_aead_aad, get_aead_tag, set_aead_tag, final, derive, and the generic
-- parameter getters/setters.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"
local param = require "tollgate.openssl_param"

ffi.cdef [[
typedef struct evp_cipher_st EVP_CIPHER;
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
EVP_CIPHER *EVP_CIPHER_fetch(OSSL_LIB_CTX *ctx, const char *algorithm, const char *properties);
void EVP_CIPHER_free(EVP_CIPHER *cipher);
const OSSL_PROVIDER *EVP_CIPHER_get0_provider(const EVP_CIPHER *cipher);
EVP_CIPHER_CTX *EVP_CIPHER_CTX_new(void);
void EVP_CIPHER_CTX_free(EVP_CIPHER_CTX *c);
int EVP_CipherInit_ex(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *type, ENGINE *impl,
                      const unsigned char *key, const unsigned char *iv, int enc);
int EVP_CipherUpdate(EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl,
                     const unsigned char *in, int inl);
int EVP_CipherFinal_ex(EVP_CIPHER_CTX *ctx, unsigned char *outm, int *outl);
int EVP_CIPHER_CTX_set_padding(EVP_CIPHER_CTX *c, int pad);
int EVP_CIPHER_CTX_ctrl(EVP_CIPHER_CTX *ctx, int type, int arg, void *ptr);
int EVP_CIPHER_CTX_get_block_size(const EVP_CIPHER_CTX *ctx);
int EVP_CIPHER_CTX_get_key_length(const EVP_CIPHER_CTX *ctx);
int EVP_CIPHER_CTX_get_iv_length(const EVP_CIPHER_CTX *ctx);
int EVP_BytesToKey(const EVP_CIPHER *type, const EVP_MD *md, const unsigned char *salt,
                   const unsigned char *data, int datal, int count,
                   unsigned char *key, unsigned char *iv);
const OSSL_PARAM *EVP_CIPHER_CTX_gettable_params(EVP_CIPHER_CTX *ctx);
const OSSL_PARAM *EVP_CIPHER_CTX_settable_params(EVP_CIPHER_CTX *ctx);
int EVP_CIPHER_CTX_get_params(EVP_CIPHER_CTX *ctx, OSSL_PARAM params[]);
int EVP_CIPHER_CTX_set_params(EVP_CIPHER_CTX *ctx, const OSSL_PARAM params[]);
]]

local C = ossl.C
local ffi_gc = ffi.gc
local ffi_new = ffi.new
local ffi_str = ffi.string
local select = select
local type = type
local concat = table.concat
local setmetatable = setmetatable

local EVP_CTRL_AEAD_GET_TAG, EVP_CTRL_AEAD_SET_TAG = 0x10, 0x11

local _M = {}
local mt = { __index = _M }

local outl = ffi_new("int[1]")
local buffer_size = 1024

--- A cipher of `cipher_name` (case-insensitive, e.g. "aes-256-gcm"), or nil, err.
function _M.new(typ, properties)
  if type(typ) ~= "string" then
    return nil, "cipher.new: expect type to be defined"
  end
  local cipher = C.EVP_CIPHER_fetch(nil, typ, properties)
  if cipher == nil then
    C.ERR_clear_error()
    return nil, string.format("cipher.new: invalid cipher type \"%s\"", typ)
  end
  cipher = ffi_gc(cipher, C.EVP_CIPHER_free)
  local ctx = C.EVP_CIPHER_CTX_new()
  if ctx == nil then
    return nil, "cipher.new: failed to create EVP_CIPHER_CTX"
  end
  ctx = ffi_gc(ctx, C.EVP_CIPHER_CTX_free)
  if C.EVP_CipherInit_ex(ctx, cipher, nil, nil, nil, -1) ~= 1 then
    return nil, ossl.err("cipher.new")
  end
  return setmetatable({
    ctx = ctx, cipher = cipher, initialized = false,
    block_size = C.EVP_CIPHER_CTX_get_block_size(ctx),
    key_size = C.EVP_CIPHER_CTX_get_key_length(ctx),
    iv_size = C.EVP_CIPHER_CTX_get_iv_length(ctx),
  }, mt)
end

_M.istype = ossl.istype(mt)

--- Sets the size of the output buffer kept between calls (a hint: larger
-- inputs grow it as needed).
function _M.set_buffer_size(sz)
  if type(sz) ~= "number" or sz <= 0 then
    return nil, "cipher.set_buffer_size: expect a positive number"
  end
  buffer_size = sz
  ossl.buf(sz)
  return true
end

--- The name of the cipher's provider ("default"...).
function _M:get_provider_name()
  return ossl.provider_name(C.EVP_CIPHER_get0_provider(self.cipher))
end

--- Sets key and IV for a new operation (opts.is_encrypt, opts.no_padding);
-- true, or false, err.
function _M:init(key, iv, opts)
  opts = opts or {}
  if type(key) ~= "string" or #key ~= self.key_size then
    return false, string.format("cipher:init: incorrect key size, expect %d", self.key_size)
  end
  if self.iv_size > 0 and (type(iv) ~= "string" or #iv ~= self.iv_size) then
    return false, string.format("cipher:init: incorrect iv size, expect %d", self.iv_size)
  end
  if C.EVP_CipherInit_ex(self.ctx, nil, nil, key, self.iv_size > 0 and iv or nil,
                         opts.is_encrypt and 1 or 0) ~= 1 then
    return false, ossl.err("cipher:init")
  end
  if opts.no_padding then
    C.EVP_CIPHER_CTX_set_padding(self.ctx, 0)
  end
  self.initialized = true
  return true
end

local function not_initialized(where)
  return nil, where .. ": cipher not initalized, call cipher:init first"
end

-- the output of one EVP_CipherUpdate over `s`
local function update_one(self, s)
  local n = #s + self.block_size
  local out = ossl.buf(n > buffer_size and n or buffer_size)
  if C.EVP_CipherUpdate(self.ctx, out, outl, s, #s) ~= 1 then
    return nil
  end
  return ffi_str(out, outl[0])
end

--- Feeds one or more strings; the output so far ("" when a block is not
-- complete yet), or nil, err.
function _M:update(...)
  if not self.initialized then
    return not_initialized("cipher:update")
  end
  local parts = {}
  for i = 1, select("#", ...) do
    local s = select(i, ...)
    local out = update_one(self, type(s) == "string" and s or tostring(s))
    if not out then
      return nil, ossl.err("cipher:update")
    end
    parts[#parts + 1] = out
  end
  return concat(parts)
end

--- Adds AAD for an AEAD cipher (GCM, CCM, ChaCha20-Poly1305); true, or nil, err.
function _M:update_aead_aad(aad)
  if not self.initialized then
    return not_initialized("cipher:update_aead_aad")
  end
  aad = tostring(aad)
  if C.EVP_CipherUpdate(self.ctx, nil, outl, aad, #aad) ~= 1 then
    return nil, ossl.err("cipher:update_aead_aad")
  end
  return true
end

--- The AEAD tag after encryption (`size` bytes, default half the key size).
function _M:get_aead_tag(size)
  if not self.initialized then
    return not_initialized("cipher:get_aead_tag")
  end
  size = size or math.floor(self.key_size / 2)
  if size > self.key_size then
    return nil, string.format("tag size %d is too large", size)
  end
  local b = ossl.buf(size)
  if C.EVP_CIPHER_CTX_ctrl(self.ctx, EVP_CTRL_AEAD_GET_TAG, size, b) ~= 1 then
    return nil, ossl.err("cipher:get_aead_tag")
  end
  return ffi_str(b, size)
end

--- Sets the AEAD tag to check before decryption; true, or nil, err.
function _M:set_aead_tag(tag)
  if not self.initialized then
    return not_initialized("cipher:set_aead_tag")
  end
  if type(tag) ~= "string" then
    return nil, "cipher:set_aead_tag: expect a string at #1"
  end
  local b = ffi_new("unsigned char[?]", #tag)
  ffi.copy(b, tag, #tag)
  if C.EVP_CIPHER_CTX_ctrl(self.ctx, EVP_CTRL_AEAD_SET_TAG, #tag, b) ~= 1 then
    return nil, ossl.err("cipher:set_aead_tag")
  end
  return true
end

--- The rest of the output (after feeding `s` if given), or nil, err.
function _M:final(s)
  if not self.initialized then
    return not_initialized("cipher:final")
  end
  local head = ""
  if s then
    local out = update_one(self, tostring(s))
    if not out then
      return nil, ossl.err("cipher:final")
    end
    head = out
  end
  local out = ossl.buf(self.block_size + 64)
  if C.EVP_CipherFinal_ex(self.ctx, out, outl) ~= 1 then
    return nil, ossl.err("cipher:final")
  end
  return head .. ffi_str(out, outl[0])
end

-- init, AAD, tag, then final(s): the one-shot operations
local function one_shot(self, encrypt, key, iv, s, no_padding, aead_aad, aead_tag)
  local ok, err = self:init(key, iv, { is_encrypt = encrypt, no_padding = no_padding })
  if ok and aead_aad then
    ok, err = self:update_aead_aad(aead_aad)
  end
  if ok and aead_tag then
    ok, err = self:set_aead_tag(aead_tag)
  end
  if not ok then
    return nil, err
  end
  return self:final(s)
end

--- One-shot encryption; the ciphertext, or nil, err.
function _M:encrypt(key, iv, s, no_padding, aead_aad)
  return one_shot(self, true, key, iv, s, no_padding, aead_aad)
end

--- One-shot decryption (checking `aead_tag` for AEAD ciphers); the
-- plaintext, or nil, err.
function _M:decrypt(key, iv, s, no_padding, aead_aad, aead_tag)
  return one_shot(self, false, key, iv, s, no_padding, aead_aad, aead_tag)
end

--- Key and IV for this cipher from `key` material as EVP_BytesToKey (`openssl
-- enc -md`): salt (8 bytes), count (default 1), md (default sha1); or
-- nil, nil, err.
function _M:derive(key, salt, count, md)
  if type(key) ~= "string" then
    return nil, nil, "cipher:derive: expect a string at #1"
  end
  if salt and #salt ~= 8 then
    if #salt > 8 then
      salt = salt:sub(1, 8)
    else
      salt = salt .. ("\0"):rep(8 - #salt)
    end
  end
  local mdt = ossl.md(md or "sha1")
  if not mdt then
    return nil, nil, string.format("cipher:derive: invalid digest type \"%s\"", tostring(md))
  end
  local keyb = ffi_new("unsigned char[?]", self.key_size)
  local ivb = ffi_new("unsigned char[?]", self.iv_size + 1)
  local size = C.EVP_BytesToKey(self.cipher, mdt, salt, key, #key, count or 1, keyb, ivb)
  if size == 0 then
    return nil, nil, ossl.err("cipher:derive")
  end
  return ffi_str(keyb, size), ffi_str(ivb, self.iv_size)
end

param.install(_M, "cipher", function(self)
  return self.ctx, C.EVP_CIPHER_CTX_gettable_params, C.EVP_CIPHER_CTX_settable_params,
         C.EVP_CIPHER_CTX_get_params, C.EVP_CIPHER_CTX_set_params
end)

return _M
