-- kong.pdk.private.base: what every PDK module shares: the C ABI of
-- core/pdk.h over the FFI, one set of scratch out-parameters, the current
-- request, and Kong's phase checks with Kong's error messages.
local ffi = require "ffi"
local tctx = require "tollgate.ctx"

local get_request = require "thread.exdata"
local ffi_cast = ffi.cast
local ffi_string = ffi.string
local fmt = string.format
local concat = table.concat
local type = type
local error = error
local tostring = tostring
local ipairs = ipairs
local pairs = pairs

ffi.cdef [[
  typedef struct tg_conn_s tg_req_t;
  int tg_pdk_get_phase(tg_req_t *r);
  int tg_pdk_req_get_method(tg_req_t *r, const char **out, size_t *len);
  int tg_pdk_req_get_path(tg_req_t *r, const char **out, size_t *len);
  int tg_pdk_req_get_raw_path(tg_req_t *r, const char **out, size_t *len);
  int tg_pdk_req_get_raw_query(tg_req_t *r, const char **out, size_t *len);
  int tg_pdk_req_get_host(tg_req_t *r, const char **out, size_t *len);
  int tg_pdk_req_get_port(tg_req_t *r);
  int tg_pdk_req_get_scheme(tg_req_t *r, const char **out, size_t *len);
  int tg_pdk_req_get_http_version(tg_req_t *r);
  int tg_pdk_req_get_header_count(tg_req_t *r);
  int tg_pdk_req_get_header_at(tg_req_t *r, int i, const char **name, size_t *nlen,
                               const char **value, size_t *vlen);
  int tg_pdk_req_get_header(tg_req_t *r, const char *name, size_t nlen, const char **value,
                            size_t *vlen);
  int tg_pdk_req_get_body(tg_req_t *r, const char **out, size_t *len);
  int tg_pdk_req_get_body_fd(tg_req_t *r);
  double tg_pdk_req_start_time(tg_req_t *r);
  int tg_pdk_req_get_capture_count(tg_req_t *r);
  int tg_pdk_req_get_capture(tg_req_t *r, int i, const char **value, size_t *vlen,
                             const char **name);
  int tg_pdk_client_get_ip(tg_req_t *r, const char **out, size_t *len);
  int tg_pdk_client_get_forwarded_ip(tg_req_t *r, const char **out, size_t *len);
  int tg_pdk_client_get_port(tg_req_t *r);
  int tg_pdk_client_is_trusted(tg_req_t *r, const char *ip, size_t len);
  int tg_pdk_upreq_set_header(tg_req_t *r, const char *name, size_t nlen, const char *value,
                              size_t vlen, int mode);
  int tg_pdk_upreq_set_path(tg_req_t *r, const char *path, size_t len);
  int tg_pdk_upreq_set_raw_query(tg_req_t *r, const char *q, size_t len);
  int tg_pdk_upreq_set_method(tg_req_t *r, const char *m, size_t len);
  int tg_pdk_upreq_set_body(tg_req_t *r, const char *body, size_t len);
  int tg_pdk_resp_get_status(tg_req_t *r);
  int tg_pdk_resp_set_status(tg_req_t *r, int status);
  int tg_pdk_resp_get_source(tg_req_t *r, const char **out, size_t *len);
  int tg_pdk_resp_get_header_count(tg_req_t *r);
  int tg_pdk_resp_get_header_at(tg_req_t *r, int i, const char **name, size_t *nlen,
                                const char **value, size_t *vlen);
  int tg_pdk_resp_get_header(tg_req_t *r, const char *name, size_t nlen, const char **value,
                             size_t *vlen);
  int tg_pdk_resp_set_header(tg_req_t *r, const char *name, size_t nlen, const char *value,
                             size_t vlen, int mode);
  int tg_pdk_resp_exit(tg_req_t *r, int status, const char *body, size_t len);
  int tg_pdk_resp_get_chunk(tg_req_t *r, const char **out, size_t *len, int *eof);
  int tg_pdk_resp_set_chunk(tg_req_t *r, const char *data, size_t len, int eof);
  int tg_pdk_svcresp_get_status(tg_req_t *r);
  int tg_pdk_svcresp_get_header(tg_req_t *r, const char *name, size_t nlen, const char **value,
                                size_t *vlen);
  int tg_pdk_svcresp_get_header_count(tg_req_t *r);
  int tg_pdk_svcresp_get_header_at(tg_req_t *r, int i, const char **name, size_t *nlen,
                                   const char **value, size_t *vlen);
  int tg_pdk_svcresp_get_body(tg_req_t *r, const char **out, size_t *len);
  int tg_pdk_upreq_enable_buffering(tg_req_t *r);
  void tg_pdk_log(int level, const char *msg, size_t len);
  int tg_pdk_log_level(void);
  double tg_pdk_now(void);
  int tg_pdk_worker_id(void);
  int tg_pdk_worker_count(void);
  int tg_pdk_req_get_id(tg_req_t *r, const char **out, size_t *len);
]]

local base = {}
local req_ptr_t = ffi.typeof("tg_req_t *")

base.C = ffi.C
-- one scratch set of out-parameters, shared by every PDK function
base.s1 = ffi.new("const char *[1]")
base.n1 = ffi.new("size_t[1]")
base.s2 = ffi.new("const char *[1]")
base.n2 = ffi.new("size_t[1]")
base.i1 = ffi.new("int[1]")

-- TG_E* error codes the PDK tells apart (core/tg.h)
base.E_AGAIN, base.E_INVAL, base.E_NOTFOUND, base.E_TOOLARGE = -2, -4, -5, -6
-- header edit modes (TG_HDR_* of core/pdk.h)
base.HDR_SET, base.HDR_ADD, base.HDR_CLEAR = 0, 1, 2

--- The current request as a `tg_req_t *`, or nil outside a request.
local function get_req()
  local p = get_request()
  if p == nil then
    return nil
  end
  return ffi_cast(req_ptr_t, p)
end
base.get_req = get_req

--- Copies the string behind the first scratch pair.
function base.str1()
  return ffi_string(base.s1[0], base.n1[0])
end

-- Phase names in the order of Kong's phase bits (kong/pdk/private/phases.lua):
-- error messages list allowed phases in this order.
local ORDER = {
  "init_worker", "certificate", "client_hello", "rewrite", "access", "balancer", "response",
  "cluster_listener", "header_filter", "body_filter", "log", "preread", "error", "admin_api",
}

-- TG_PHASE_* bits of core/pdk.h -> Kong's names
local BIT_NAMES = {
  [1] = "init_worker", [2] = "certificate", [4] = "rewrite", [8] = "access",
  [16] = "response", [32] = "balancer", [64] = "header_filter", [128] = "body_filter",
  [256] = "log", [512] = "admin_api",
}

--- A set of phases (Kong's phase_checker.new): a table name -> true plus the
-- names in Kong's order for messages.
function base.phases(...)
  local set = {}
  for _, n in ipairs({ ... }) do
    set[n] = true
  end
  local names = {}
  for _, n in ipairs(ORDER) do
    if set[n] then
      names[#names + 1] = n
    end
  end
  set.__names = concat(names, ", ")
  return set
end

base.PHASES = {
  request = base.phases("rewrite", "access", "balancer", "response", "cluster_listener",
                        "header_filter", "body_filter", "log", "error", "admin_api"),
}
for _, n in ipairs(ORDER) do
  base.PHASES[n] = base.phases(n)
end

--- The current phase's name: the request's, else the loader's (tollgate.ctx).
function base.phase_name(r)
  r = r or get_req()
  if r ~= nil then
    local bits = base.C.tg_pdk_get_phase(r)
    return BIT_NAMES[bits] or (bits == 0 and tctx.phase()) or nil
  end
  return tctx.phase()
end

--- Raises Kong's error unless the current phase is in `set` (level: the
-- caller of the PDK function).
function base.check_phase(set, r)
  local cur = base.phase_name(r)
  if cur == nil then
    error(fmt("no phase in ngx.ctx.KONG_PHASE, (need one of %s)", set.__names), 3)
  end
  if set[cur] then
    return
  end
  error(fmt("function cannot be called in %s phase (only in: %s)", cur, set.__names), 3)
end

function base.check_not_phase(set, r)
  local cur = base.phase_name(r)
  if cur == nil then
    error("no phase in ngx.ctx.KONG_PHASE", 3)
  end
  if not set[cur] then
    return
  end
  error(fmt("function cannot be called in %s phase (can be called in any phases except: %s)",
            cur, set.__names), 3)
end

--- The request in a request phase; raises when called outside of one.
function base.need_req(r)
  if r == nil then
    error("no request in this phase", 3)
  end
  return r
end

--- Kong's header value normalisation ("" is sent as " ").
--- The name of the file the request body spilled to (what
-- ngx.req.get_body_file gives), or nil when the body is in memory or absent.
function base.body_file(r)
  local fd = base.C.tg_pdk_req_get_body_fd(r)
  if fd < 0 then
    return nil
  end
  return "/proc/self/fd/" .. fd
end

function base.normalize_header(value)
  if type(value) == "string" then
    return value == "" and " " or value
  end
  return tostring(value)
end

--- Kong's checks.validate_header: returns the value as a string or a list.
function base.validate_header(name, value, level)
  level = (level or 2) + 1
  local tname = type(name)
  if tname ~= "string" then
    error(fmt("invalid header name %q: got %s, expected string", tostring(name), tname), level)
  end
  local tvalue = type(value)
  if tvalue == "string" then
    return value
  end
  if tvalue == "table" then
    for _, vv in ipairs(value) do
      local tvv = type(vv)
      if tvv ~= "string" then
        error(fmt("invalid header value in array %q: got %s, expected string", name, tvv),
              level)
      end
    end
    return value
  elseif tvalue == "number" or tvalue == "boolean" then
    return tostring(value)
  end
  error(fmt("invalid header value for %q: got %s, expected array of string, string, " ..
            "number or boolean", name, tvalue), level)
end

function base.validate_headers(headers, level)
  level = (level or 2) + 1
  if type(headers) ~= "table" then
    error("headers must be a table", level)
  end
  for k, v in pairs(headers) do
    local tk = type(k)
    if tk ~= "string" then
      error(fmt("invalid header name %q: got %s, expected string", tostring(k), tk), level)
    end
    base.validate_header(k, v, level)
  end
end

--- A headers table with case-insensitive lookup (and "_" as "-"), as
-- ngx.req.get_headers returns.
local headers_mt = {
  __index = function(t, k)
    if type(k) ~= "string" then
      return nil
    end
    local n = k:lower():gsub("_", "-")
    if n ~= k then
      return rawget(t, n)
    end
    return nil
  end,
}
base.headers_mt = headers_mt

--- Kong's max_headers argument check (get_headers of kong.request,
-- kong.response, kong.service.response): the limit, 100 when nil.
function base.max_headers(max_headers)
  if max_headers == nil then
    return 100
  elseif type(max_headers) ~= "number" then
    error("max_headers must be a number", 3)
  elseif max_headers < 1 then
    error("max_headers must be >= 1", 3)
  elseif max_headers > 1000 then
    error("max_headers must be <= 1000", 3)
  end
  return max_headers
end

--- Reads n headers through get_at(r, i, ...) into a Kong headers table;
-- returns t, "truncated" when there were more than max.
function base.collect_headers(r, count, get_at, max)
  local s1, n1, s2, n2 = base.s1, base.n1, base.s2, base.n2
  local t = setmetatable({}, headers_mt)
  local n = count(r)
  local truncated
  if n > max then
    n, truncated = max, "truncated"
  end
  for i = 0, n - 1 do
    if get_at(r, i, s1, n1, s2, n2) >= 0 then
      local name = ffi_string(s1[0], n1[0]):lower()
      local value = ffi_string(s2[0], n2[0])
      local cur = rawget(t, name)
      if cur == nil then
        t[name] = value
      elseif type(cur) == "table" then
        cur[#cur + 1] = value
      else
        t[name] = { cur, value }
      end
    end
  end
  return t, truncated
end

return base
