-- resty.openssl.bn (lua-resty-openssl's API) over OpenSSL's BIGNUM: new, dup,
-- istype, set, from/to binary, mpi, hex and dec, to_number, generate_prime,
-- arithmetic (as functions and metamethods), modular arithmetic, shifts and
-- predicates. Integers only.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"

ffi.cdef [[
BIGNUM *BN_new(void);
void BN_free(BIGNUM *a);
BIGNUM *BN_dup(const BIGNUM *a);
BN_CTX *BN_CTX_new(void);
void BN_CTX_free(BN_CTX *c);
int BN_set_word(BIGNUM *a, unsigned long w);
unsigned long BN_get_word(const BIGNUM *a);
void BN_set_negative(BIGNUM *b, int n);
int BN_is_negative(const BIGNUM *b);
int BN_num_bits(const BIGNUM *a);
BIGNUM *BN_bin2bn(const unsigned char *s, int len, BIGNUM *ret);
int BN_bn2bin(const BIGNUM *a, unsigned char *to);
int BN_bn2binpad(const BIGNUM *a, unsigned char *to, int tolen);
BIGNUM *BN_mpi2bn(const unsigned char *s, int len, BIGNUM *ret);
int BN_bn2mpi(const BIGNUM *a, unsigned char *to);
int BN_hex2bn(BIGNUM **a, const char *str);
int BN_dec2bn(BIGNUM **a, const char *str);
char *BN_bn2hex(const BIGNUM *a);
char *BN_bn2dec(const BIGNUM *a);
BIGNUM *BN_copy(BIGNUM *a, const BIGNUM *b);
int BN_add(BIGNUM *r, const BIGNUM *a, const BIGNUM *b);
int BN_sub(BIGNUM *r, const BIGNUM *a, const BIGNUM *b);
int BN_mul(BIGNUM *r, const BIGNUM *a, const BIGNUM *b, BN_CTX *ctx);
int BN_sqr(BIGNUM *r, const BIGNUM *a, BN_CTX *ctx);
int BN_div(BIGNUM *dv, BIGNUM *rem, const BIGNUM *m, const BIGNUM *d, BN_CTX *ctx);
int BN_nnmod(BIGNUM *r, const BIGNUM *m, const BIGNUM *d, BN_CTX *ctx);
int BN_mod_add(BIGNUM *r, const BIGNUM *a, const BIGNUM *b, const BIGNUM *m, BN_CTX *ctx);
int BN_mod_sub(BIGNUM *r, const BIGNUM *a, const BIGNUM *b, const BIGNUM *m, BN_CTX *ctx);
int BN_mod_mul(BIGNUM *r, const BIGNUM *a, const BIGNUM *b, const BIGNUM *m, BN_CTX *ctx);
int BN_mod_sqr(BIGNUM *r, const BIGNUM *a, const BIGNUM *m, BN_CTX *ctx);
int BN_exp(BIGNUM *r, const BIGNUM *a, const BIGNUM *p, BN_CTX *ctx);
int BN_mod_exp(BIGNUM *r, const BIGNUM *a, const BIGNUM *p, const BIGNUM *m, BN_CTX *ctx);
int BN_gcd(BIGNUM *r, const BIGNUM *a, const BIGNUM *b, BN_CTX *ctx);
int BN_lshift(BIGNUM *r, const BIGNUM *a, int n);
int BN_rshift(BIGNUM *r, const BIGNUM *a, int n);
int BN_cmp(const BIGNUM *a, const BIGNUM *b);
int BN_is_zero(const BIGNUM *a);
int BN_is_one(const BIGNUM *a);
int BN_is_odd(const BIGNUM *a);
int BN_is_word(const BIGNUM *a, unsigned long w);
int BN_check_prime(const BIGNUM *p, BN_CTX *ctx, void *cb);
int BN_is_prime_ex(const BIGNUM *p, int nchecks, BN_CTX *ctx, void *cb);
int BN_generate_prime_ex(BIGNUM *ret, int bits, int safe, const BIGNUM *add,
                         const BIGNUM *rem, void *cb);
]]

local C = ossl.C
local ffi_gc = ffi.gc
local ffi_str = ffi.string
local ffi_new = ffi.new
local type = type
local floor = math.floor
local setmetatable = setmetatable
local getmetatable = getmetatable

local _M = {}
local mt = { __index = _M }

local bn_ctx = ffi_gc(C.BN_CTX_new(), C.BN_CTX_free) -- one per state

local function wrap(ptr)
  return setmetatable({ ctx = ffi_gc(ptr, C.BN_free) }, mt)
end

local function fresh()
  local p = C.BN_new()
  if p == nil then
    return nil
  end
  return wrap(p)
end

-- Sets BIGNUM `p` from a Lua number or a string in `base`; true or nil, err.
local function assign(p, some, base, where)
  if type(some) == "number" then
    if some ~= floor(some) or some ~= some or math.abs(some) >= 2 ^ 53 then
      return nil, where .. ": expect an integer number"
    end
    if C.BN_set_word(p, math.abs(some)) ~= 1 then
      return nil, ossl.err(where)
    end
    C.BN_set_negative(p, some < 0 and 1 or 0)
    return true
  elseif type(some) == "string" then
    base = base or 10
    if base == 10 or base == 16 then
      local pp = ffi_new("BIGNUM *[1]", p)
      local f = base == 10 and C.BN_dec2bn or C.BN_hex2bn
      local n = f(pp, some)
      if n == 0 or n ~= #some then
        C.ERR_clear_error()
        return nil, where .. ": invalid " .. (base == 10 and "decimal" or "hex") ..
                    " string \"" .. some .. "\""
      end
      return true
    elseif base == 2 then
      if C.BN_bin2bn(some, #some, p) == nil then
        return nil, ossl.err(where)
      end
      return true
    elseif base == 0 then
      if C.BN_mpi2bn(some, #some, p) == nil then
        return nil, ossl.err(where)
      end
      return true
    end
    return nil, where .. ": unsupported base " .. tostring(base)
  end
  return nil, where .. ": expect nil, a number or a string at #1"
end

--- A bn from nothing (0), a number, or a string in `base` (10, 16, 2 or 0 =
-- MPI); or nil, err.
function _M.new(some, base)
  local b = fresh()
  if not b then
    return nil, ossl.err("bn.new")
  end
  if some ~= nil then
    local ok, err = assign(b.ctx, some, base, "bn.new")
    if not ok then
      return nil, err
    end
  end
  return b
end

--- true when `l` is a bn instance.
_M.istype = ossl.istype(mt)

--- A new bn holding a copy of the BIGNUM* `ctx`.
function _M.dup(ctx)
  if type(ctx) ~= "cdata" then
    return nil, "bn.dup: expect a bn ctx at #1"
  end
  local p = C.BN_dup(ctx)
  if p == nil then
    return nil, ossl.err("bn.dup")
  end
  return wrap(p)
end

--- Sets this bn from a number or a string in `base`; self, or nil, err.
function _M:set(some, base)
  local ok, err = assign(self.ctx, some, base, "bn:set")
  if not ok then
    return nil, err
  end
  return self
end

function _M.from_binary(s)
  if type(s) ~= "string" then
    return nil, "bn.from_binary: expect a string at #1"
  end
  return _M.new(s, 2)
end

function _M.from_mpi(s)
  if type(s) ~= "string" then
    return nil, "bn.from_mpi: expect a string at #1"
  end
  return _M.new(s, 0)
end

function _M.from_hex(s)
  if type(s) ~= "string" then
    return nil, "bn.from_hex: expect a string at #1"
  end
  return _M.new(s, 16)
end

function _M.from_dec(s)
  if type(s) ~= "string" then
    return nil, "bn.from_dec: expect a string at #1"
  end
  return _M.new(s, 10)
end

--- Big-endian magnitude, left-padded with zeros to `padto` bytes if given.
function _M:to_binary(padto)
  local n = floor((C.BN_num_bits(self.ctx) + 7) / 8)
  if padto then
    if padto < n then
      return nil, "bn:to_binary: padto is smaller than the number"
    end
    local b = ossl.buf(padto)
    if C.BN_bn2binpad(self.ctx, b, padto) < 0 then
      return nil, ossl.err("bn:to_binary")
    end
    return ffi_str(b, padto)
  end
  local b = ossl.buf(n)
  local len = C.BN_bn2bin(self.ctx, b)
  return ffi_str(b, len)
end

--- MPI form (4-byte big-endian length, then the number).
function _M:to_mpi()
  local n = C.BN_bn2mpi(self.ctx, nil)
  local b = ossl.buf(n)
  n = C.BN_bn2mpi(self.ctx, b)
  return ffi_str(b, n)
end

local function owned_str(p, where)
  if p == nil then
    return nil, ossl.err(where)
  end
  local s = ffi_str(p)
  ossl.free(p)
  return s
end

--- Upper-case hex ("-" first when negative).
function _M:to_hex()
  return owned_str(C.BN_bn2hex(self.ctx), "bn:to_hex")
end

--- Decimal text ("-" first when negative).
function _M:to_dec()
  return owned_str(C.BN_bn2dec(self.ctx), "bn:to_dec")
end
mt.__tostring = _M.to_dec

--- The low 64 bits as a Lua number (with the sign).
function _M:to_number()
  local w = tonumber(C.BN_get_word(self.ctx))
  if C.BN_is_negative(self.ctx) == 1 then
    w = -w
  end
  return w
end
_M.tonumber = _M.to_number

--- A random prime of `bits` bits (a safe prime when `safe`); or nil, err.
function _M.generate_prime(bits, safe)
  local b = fresh()
  if not b or C.BN_generate_prime_ex(b.ctx, bits, safe and 1 or 0, nil, nil, nil) ~= 1 then
    return nil, ossl.err("bn.generate_prime")
  end
  return b
end

-- the BIGNUM* of a bn or a number
local function ptr(v, where)
  if getmetatable(v) == mt then
    return v.ctx
  end
  local b, err = _M.new(v)
  if not b then
    error(where .. ": " .. tostring(err), 3)
  end
  return b.ctx
end

local function op2(name, f, with_ctx)
  return function(a, b)
    local r = fresh()
    local pa, pb = ptr(a, "bn." .. name), ptr(b, "bn." .. name)
    local ok
    if with_ctx then
      ok = f(r.ctx, pa, pb, bn_ctx)
    else
      ok = f(r.ctx, pa, pb)
    end
    if ok ~= 1 then
      error(ossl.err("bn." .. name), 2)
    end
    return r
  end
end

local function op3(name, f)
  return function(a, b, m)
    local r = fresh()
    if f(r.ctx, ptr(a, "bn." .. name), ptr(b, "bn." .. name), ptr(m, "bn." .. name),
         bn_ctx) ~= 1 then
      error(ossl.err("bn." .. name), 2)
    end
    return r
  end
end

_M.add = op2("add", C.BN_add)
_M.sub = op2("sub", C.BN_sub)
_M.mul = op2("mul", C.BN_mul, true)
_M.exp = op2("exp", C.BN_exp, true)
_M.pow = _M.exp
_M.gcd = op2("gcd", C.BN_gcd, true)

--- Floor division (rounds towards minus infinity, as Lua's //).
function _M.div(a, b)
  local pa, pb = ptr(a, "bn.div"), ptr(b, "bn.div")
  local q, rem = fresh(), fresh()
  if C.BN_div(q.ctx, rem.ctx, pa, pb, bn_ctx) ~= 1 then
    error(ossl.err("bn.div"), 2)
  end
  -- BN_div truncates; step down when the signs differ and there is a remainder
  if C.BN_is_zero(rem.ctx) == 0 and C.BN_is_negative(pa) ~= C.BN_is_negative(pb) then
    local one = _M.new(1)
    C.BN_sub(q.ctx, q.ctx, one.ctx)
  end
  return q
end
_M.idiv = _M.div

--- Non-negative remainder of a by b.
function _M.mod(a, b)
  local r = fresh()
  if C.BN_nnmod(r.ctx, ptr(a, "bn.mod"), ptr(b, "bn.mod"), bn_ctx) ~= 1 then
    error(ossl.err("bn.mod"), 2)
  end
  return r
end

function _M.sqr(a)
  local r = fresh()
  if C.BN_sqr(r.ctx, ptr(a, "bn.sqr"), bn_ctx) ~= 1 then
    error(ossl.err("bn.sqr"), 2)
  end
  return r
end

_M.mod_add = op3("mod_add", C.BN_mod_add)
_M.mod_sub = op3("mod_sub", C.BN_mod_sub)
_M.mod_mul = op3("mod_mul", C.BN_mod_mul)
_M.mod_exp = op3("mod_exp", C.BN_mod_exp)
_M.mod_pow = _M.mod_exp

function _M.mod_sqr(a, m)
  local r = fresh()
  if C.BN_mod_sqr(r.ctx, ptr(a, "bn.mod_sqr"), ptr(m, "bn.mod_sqr"), bn_ctx) ~= 1 then
    error(ossl.err("bn.mod_sqr"), 2)
  end
  return r
end

function _M.lshift(a, bits)
  local r = fresh()
  if C.BN_lshift(r.ctx, ptr(a, "bn.lshift"), bits) ~= 1 then
    error(ossl.err("bn.lshift"), 2)
  end
  return r
end

function _M.rshift(a, bits)
  local r = fresh()
  if C.BN_rshift(r.ctx, ptr(a, "bn.rshift"), bits) ~= 1 then
    error(ossl.err("bn.rshift"), 2)
  end
  return r
end

function _M:is_zero()
  return C.BN_is_zero(self.ctx) == 1
end

function _M:is_one()
  return C.BN_is_one(self.ctx) == 1
end

function _M:is_odd()
  return C.BN_is_odd(self.ctx) == 1
end

function _M:is_word(n)
  if type(n) ~= "number" then
    return nil, "bn:is_word: expect a number at #1"
  end
  return C.BN_is_word(self.ctx, n) == 1
end

--- Miller-Rabin with `nchecks` rounds (0 or nil: OpenSSL's choice by size).
function _M:is_prime(nchecks)
  local r
  if nchecks and nchecks > 0 then
    r = C.BN_is_prime_ex(self.ctx, nchecks, bn_ctx, nil)
  else
    r = C.BN_check_prime(self.ctx, bn_ctx, nil)
  end
  if r < 0 then
    return nil, ossl.err("bn:is_prime")
  end
  return r == 1
end

mt.__add = _M.add
mt.__sub = _M.sub
mt.__mul = _M.mul
mt.__div = _M.div
mt.__mod = _M.mod
mt.__unm = function(a)
  local r = wrap(C.BN_dup(a.ctx))
  C.BN_set_negative(r.ctx, C.BN_is_negative(a.ctx) == 1 and 0 or 1)
  return r
end
mt.__eq = function(a, b)
  return C.BN_cmp(ptr(a, "bn.__eq"), ptr(b, "bn.__eq")) == 0
end
mt.__lt = function(a, b)
  return C.BN_cmp(ptr(a, "bn.__lt"), ptr(b, "bn.__lt")) < 0
end
mt.__le = function(a, b)
  return C.BN_cmp(ptr(a, "bn.__le"), ptr(b, "bn.__le")) <= 0
end

return _M
