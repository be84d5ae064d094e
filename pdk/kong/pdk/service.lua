--- kong.service, kong.service.request, kong.service.response.
-- @module kong.service
local base = require "kong.pdk.private.base"
local args = require "kong.pdk.private.args"
local tctx = require "tollgate.ctx"
local cjson = require "cjson.safe"
local ffi = require "ffi"

local C = base.C
local s1, n1 = base.s1, base.n1
local get_req = base.get_req
local check_phase = base.check_phase
local validate_header = base.validate_header
local normalize_header = base.normalize_header
local ffi_string = ffi.string
local type = type
local pairs = pairs
local ipairs = ipairs
local error = error
local tostring = tostring
local fmt = string.format
local find = string.find
local sub = string.sub
local match = string.match
local byte = string.byte
local lower = string.lower
local floor = math.floor

ffi.cdef [[
  int tg_pdk_svc_set_upstream(tg_req_t *r, const char *name, size_t len);
  int tg_pdk_svc_set_target(tg_req_t *r, const char *host, size_t hlen, const char *addr,
                            int port);
  int tg_pdk_svc_set_target_failed(tg_req_t *r, const char *host, size_t hlen, int status,
                                   const char *msg, size_t mlen);
  int tg_pdk_svc_set_retries(tg_req_t *r, int retries);
  int tg_pdk_svc_set_timeouts(tg_req_t *r, int connect, int write, int read);
  int tg_pdk_svc_set_scheme(tg_req_t *r, int https);
  int tg_pdk_svc_set_tls_verify(tg_req_t *r, int on);
  int tg_pdk_svc_set_tls_verify_depth(tg_req_t *r, int depth);
  int tg_pdk_svc_set_tls_cert_key(tg_req_t *r, void *cert, void *key);
]]
local HDR_SET, HDR_ADD, HDR_CLEAR = base.HDR_SET, base.HDR_ADD, base.HDR_CLEAR

local access_and_rewrite = base.phases("rewrite", "access")
local access_only = base.phases("access")
local access_rewrite_balancer = base.phases("rewrite", "access", "balancer")
local access_rewrite_balancer_preread = base.phases("rewrite", "access", "balancer", "preread")
-- kong.service.response's phases (Kong: no error or admin_api here)
local header_body_log = base.phases("response", "header_filter", "body_filter", "log")

local need = base.need_req

-- the query going upstream, as the PDK last set it (the core has no getter)
local UPQUERY_KEY = "__tg_upstream_query"

local function set_query_str(r, q)
  C.tg_pdk_upreq_set_raw_query(r, q, #q)
  tctx.get(r)[UPQUERY_KEY] = q
end

local function current_query(r)
  local q = tctx.get(r)[UPQUERY_KEY]
  if q then
    return q
  end
  if C.tg_pdk_req_get_raw_query(r, s1, n1) < 0 then
    return ""
  end
  return ffi_string(s1[0], n1[0])
end

local function set_hdr(r, name, value, mode)
  if type(value) == "table" then
    local first = true
    for _, v in ipairs(value) do
      v = normalize_header(v)
      C.tg_pdk_upreq_set_header(r, name, #name, v, #v,
                                (first and mode == HDR_SET) and HDR_SET or HDR_ADD)
      first = false
    end
    return
  end
  value = normalize_header(value)
  C.tg_pdk_upreq_set_header(r, name, #name, value, #value, mode)
end

-- kong.service.request.set_body's encoders by MIME type (without its
-- parameters): body, the Content-Type to send. Errors are the caller's
-- (level 3), as Kong's.
local function multipart_boundary(mime, body)
  local at = find(mime, "boundary=", 1, true)
  local boundary
  if at then
    boundary = sub(mime, at + 9)
    if byte(boundary, 1) == 34 then -- '"'
      boundary = match(boundary, '^"([^"]*)"') or sub(boundary, 2)
    end
  end
  local function clashes(b)
    local mark = "\n--" .. b
    for _, v in pairs(body) do
      if find(tostring(v), mark, 1, true) then
        return true
      end
    end
    return false
  end
  while not boundary or clashes(boundary) do
    boundary = tostring(math.random(1e10))
  end
  return boundary
end

local BODY_ENCODERS = {
  ["application/x-www-form-urlencoded"] = function(body, mime)
    local ok, encoded = pcall(args.encode, body)
    if not ok then
      error((tostring(encoded):gsub("^.-:%d+: ", "")), 3)
    end
    return encoded, mime
  end,
  ["application/json"] = function(body, mime)
    local encoded, err = cjson.encode(body)
    if not encoded then
      error(err, 3)
    end
    return encoded, mime
  end,
  ["multipart/form-data"] = function(body, mime)
    local keys = {}
    for k, v in pairs(body) do
      if type(k) ~= "string" then
        error(string.format("invalid key %q: got %s, expected string", tostring(k), type(k)), 3)
      end
      local tv = type(v)
      if tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
        error(string.format("invalid value %q: got %s, expected string, number or boolean",
                            k, tv), 3)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    local boundary = multipart_boundary(mime, body)
    local out = {}
    for _, k in ipairs(keys) do
      out[#out + 1] = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"" .. k ..
                      "\"\r\n\r\n" .. tostring(body[k]) .. "\r\n"
    end
    out[#out + 1] = "--" .. boundary .. "--\r\n"
    return table.concat(out), "multipart/form-data; boundary=" .. boundary
  end,
}

local function new_request(kong)
  local SR = {}

  --- The scheme used upstream for this request: "http" or "https".
  -- @function kong.service.request.set_scheme
  function SR.set_scheme(scheme)
    local r = get_req()
    check_phase(access_rewrite_balancer, r)
    if type(scheme) ~= "string" then
      error("scheme must be a string", 2)
    end
    if scheme ~= "http" and scheme ~= "https" then
      error("invalid scheme: " .. scheme, 2)
    end
    C.tg_pdk_svc_set_scheme(need(r), scheme == "https" and 1 or 0)
  end

  --- The path sent upstream (must start with "/").
  -- @function kong.service.request.set_path
  function SR.set_path(path)
    local r = get_req()
    check_phase(access_rewrite_balancer, r)
    if type(path) ~= "string" then
      error("path must be a string", 2)
    end
    if byte(path) ~= 47 then
      error("path must start with /", 2)
    end
    C.tg_pdk_upreq_set_path(need(r), path, #path)
  end

  --- The raw query sent upstream.
  -- @function kong.service.request.set_raw_query
  function SR.set_raw_query(query)
    local r = get_req()
    check_phase(access_and_rewrite, r)
    if type(query) ~= "string" then
      error("query must be a string", 2)
    end
    set_query_str(need(r), query)
  end

  --- Removes every occurrence of a query argument from what goes upstream.
  -- @function kong.service.request.clear_query_arg
  function SR.clear_query_arg(name)
    local r = get_req()
    check_phase(access_and_rewrite, r)
    if type(name) ~= "string" then
      error("query argument name must be a string", 2)
    end
    local q = current_query(need(r))
    if q == "" then
      return
    end
    local kept = {}
    for piece in q:gmatch("[^&]+") do
      local eq = find(piece, "=", 1, true)
      local k = eq and piece:sub(1, eq - 1) or piece
      if k ~= name then
        kept[#kept + 1] = piece
      end
    end
    q = table.concat(kept, "&")
    if find(q, "+", 1, true) then
      q = q:gsub("%+", "%%20")
    end
    set_query_str(r, q)
  end

  --- Enables buffered proxying: the upstream's whole answer is read before
  -- the response phase and header_filter, so that plugins see its body with
  -- kong.service.response.get_raw_body / get_body.
  -- @function kong.service.request.enable_buffering
  -- @phases rewrite, access, balancer
  function SR.enable_buffering()
    local r = get_req()
    check_phase(access_rewrite_balancer, r)
    C.tg_pdk_upreq_enable_buffering(need(r))
  end

  --- The method sent upstream.
  -- @function kong.service.request.set_method
  function SR.set_method(method)
    local r = get_req()
    check_phase(access_and_rewrite, r)
    if type(method) ~= "string" then
      error("method must be a string", 2)
    end
    local ok = { GET = 1, HEAD = 1, PUT = 1, POST = 1, DELETE = 1, OPTIONS = 1, MKCOL = 1,
                 COPY = 1, MOVE = 1, PROPFIND = 1, PROPPATCH = 1, LOCK = 1, UNLOCK = 1,
                 PATCH = 1, TRACE = 1 }
    if not ok[method] then
      error("invalid method: " .. method, 2)
    end
    C.tg_pdk_upreq_set_method(need(r), method, #method)
  end

  --- The query sent upstream, from a table (sorted keys).
  -- @function kong.service.request.set_query
  function SR.set_query(t)
    local r = get_req()
    check_phase(access_and_rewrite, r)
    if type(t) ~= "table" then
      error("args must be a table", 2)
    end
    set_query_str(need(r), args.encode(t))
  end

  --- Sets a header sent upstream.
  -- @function kong.service.request.set_header
  function SR.set_header(header, value)
    local r = get_req()
    check_phase(access_rewrite_balancer, r)
    if type(header) ~= "string" then
      error("header name must be a string", 2)
    end
    value = validate_header(header, value)
    set_hdr(need(r), header, value, HDR_SET)
  end

  --- Adds a header value sent upstream.
  -- @function kong.service.request.add_header
  function SR.add_header(header, value)
    local r = get_req()
    check_phase(access_and_rewrite, r)
    if type(header) ~= "string" then
      error("header name must be a string", 2)
    end
    value = validate_header(header, value)
    set_hdr(need(r), header, value, HDR_ADD)
  end

  --- Removes a header from what is sent upstream.
  -- @function kong.service.request.clear_header
  function SR.clear_header(header)
    local r = get_req()
    check_phase(access_and_rewrite, r)
    if type(header) ~= "string" then
      error("header name must be a string", 2)
    end
    C.tg_pdk_upreq_set_header(need(r), header, #header, nil, 0, HDR_CLEAR)
  end

  --- Sets several headers sent upstream.
  -- @function kong.service.request.set_headers
  function SR.set_headers(headers)
    local r = get_req()
    check_phase(access_and_rewrite, r)
    if type(headers) ~= "table" then
      error("headers must be a table", 2)
    end
    base.validate_headers(headers)
    need(r)
    for k, v in pairs(headers) do
      set_hdr(r, k, v, HDR_SET)
    end
  end

  --- The raw body sent upstream (Content-Length follows).
  -- @function kong.service.request.set_raw_body
  function SR.set_raw_body(body)
    local r = get_req()
    check_phase(access_and_rewrite, r)
    if type(body) ~= "string" then
      error("body must be a string", 2)
    end
    C.tg_pdk_upreq_set_body(need(r), body, #body)
  end

  --- The body sent upstream, encoded by MIME type (JSON or urlencoded).
  -- @function kong.service.request.set_body
  function SR.set_body(body, mimetype)
    local r = get_req()
    check_phase(access_and_rewrite, r)
    if type(body) ~= "table" then
      error("args must be a table", 2)
    end
    if mimetype ~= nil and type(mimetype) ~= "string" then
      error("mime must be a string", 2)
    end
    need(r)
    local mime = mimetype
    if not mime then
      if C.tg_pdk_req_get_header(r, "Content-Type", 12, s1, n1) < 0 then
        return nil, "content type was neither explicitly given " ..
                    "as an argument or received as a header"
      end
      mime = ffi_string(s1[0], n1[0])
    end
    -- Kong picks the encoder by the type without its parameters, as given
    local semi = find(mime, ";", 1, true)
    local encoder = BODY_ENCODERS[semi and sub(mime, 1, semi - 1) or mime]
    if not encoder then
      error("unsupported content type " .. mime, 2)
    end
    local encoded, content_type = encoder(body, mime)
    C.tg_pdk_upreq_set_header(r, "Content-Type", 12, content_type, #content_type, HDR_SET)
    C.tg_pdk_upreq_set_body(r, encoded, #encoded)
    return true
  end

  local _ = kong
  return SR
end

local function new_response(kong)
  local RS = {}

  --- The status the upstream answered with (nil when none).
  -- @function kong.service.response.get_status
  function RS.get_status()
    local r = get_req()
    check_phase(header_body_log, r)
    local s = C.tg_pdk_svcresp_get_status(need(r))
    if s <= 0 then
      return nil
    end
    return s
  end

  --- A header of the upstream's answer (nil when absent).
  -- @function kong.service.response.get_header
  function RS.get_header(name)
    local r = get_req()
    check_phase(header_body_log, r)
    if type(name) ~= "string" then
      error("name must be a string", 2)
    end
    name = name:gsub("_", "-") -- as the headers table's lookup does
    if C.tg_pdk_svcresp_get_header(need(r), name, #name, s1, n1) < 0 then
      return nil
    end
    return ffi_string(s1[0], n1[0])
  end

  --- The upstream's headers (as received, without the edits of plugins):
  -- lowercase names, case-insensitive lookup, "_" for "-"; nil, "truncated"
  -- beyond max_headers (default 100, 1..1000).
  -- @function kong.service.response.get_headers
  -- @phases response, header_filter, body_filter, log
  function RS.get_headers(max_headers)
    local r = get_req()
    check_phase(header_body_log, r)
    max_headers = base.max_headers(max_headers)
    return base.collect_headers(need(r), C.tg_pdk_svcresp_get_header_count,
                                C.tg_pdk_svcresp_get_header_at, max_headers)
  end

  local BODY_TYPES = { "application/x-www-form-urlencoded", "application/json",
                       "multipart/form-data" }
  local NOT_BUFFERED = "service body is only available with buffered proxying " ..
                       "(see: kong.service.request.enable_buffering function)"

  --- The upstream's whole body (buffered proxying only).
  -- @function kong.service.response.get_raw_body
  -- @phases response, header_filter, body_filter, log
  function RS.get_raw_body()
    local r = get_req()
    check_phase(header_body_log, r)
    if C.tg_pdk_svcresp_get_body(need(r), s1, n1) < 0 then
      error(NOT_BUFFERED, 2)
    end
    return ffi_string(s1[0], n1[0])
  end

  --- The upstream's body decoded by its MIME type (JSON, urlencoded form,
  -- multipart); buffered proxying only. Returns body, err, mimetype.
  -- @function kong.service.response.get_body
  -- @phases response, header_filter, body_filter, log
  -- @tparam[opt] string mimetype
  -- @tparam[opt] number max_args
  function RS.get_body(mimetype, max_args)
    local r = get_req()
    check_phase(header_body_log, r)
    if C.tg_pdk_svcresp_get_body(need(r), s1, n1) < 0 then
      error(NOT_BUFFERED, 2)
    end
    local content_type = mimetype or RS.get_header("Content-Type")
    if not content_type then
      return nil, "missing content type"
    end
    local ct = lower(content_type)
    local semi = find(ct, ";", 1, true)
    if semi then
      ct = ct:sub(1, semi - 1)
    end
    for _, mime in ipairs(BODY_TYPES) do
      if find(ct, mime, 1, true) == 1 then
        return args.decode_body(mime, content_type, RS.get_raw_body, max_args, 3)
      end
    end
    return nil, "unsupported content type '" .. content_type .. "'", ct
  end

  local _ = kong
  return RS
end

local function new(kong)
  local S = {}
  S.request = new_request(kong)
  S.response = new_response(kong)

  --- Routes this request to the Upstream `host` of the config (its balancer,
  -- health and retries), whatever the service names. Returns true, or nil and
  -- "could not find an Upstream named '<host>'".
  -- @function kong.service.set_upstream
  -- @phases access
  function S.set_upstream(host)
    local r = get_req()
    check_phase(access_only, r)
    if type(host) ~= "string" then
      error("host must be a string", 2)
    end
    if C.tg_pdk_svc_set_upstream(need(r), host, #host) ~= 0 then
      return nil, "could not find an Upstream named '" .. host .. "'"
    end
    return true
  end

  --- Sends this request to host:port without the balancer; `host` becomes
  -- the Host header (as Kong's $upstream_host). Addresses, localhost and
  -- /etc/hosts names resolve at once; a name a service of the config uses
  -- follows the resolver's current answers when the request goes upstream;
  -- any other name fails the request then with Kong's 500 (no worker-side
  -- DNS query can be made without blocking yet).
  -- @function kong.service.set_target
  -- @phases rewrite, access, balancer, preread
  function S.set_target(host, port)
    local r = get_req()
    check_phase(access_rewrite_balancer_preread, r)
    if type(host) ~= "string" then
      error("host must be a string", 2)
    end
    if type(port) ~= "number" or floor(port) ~= port then
      error("port must be an integer", 2)
    end
    if port < 0 or port > 65535 then
      error("port must be an integer between 0 and 65535: given " .. port, 2)
    end
    r = need(r)
    local bare = host:match("^%[(.*)%]$") or host
    local addr = require("tollgate.ngx_socket").resolve(bare)
    local rc = C.tg_pdk_svc_set_target(r, host, #host, addr, port)
    if rc ~= 0 then
      local msg = fmt("failed the initial dns/balancer resolve for '%s' with: %s could not "
                      .. "be resolved (kong.service.set_target resolves addresses, /etc/hosts "
                      .. "names and the config's service hosts only)", host, host)
      C.tg_pdk_svc_set_target_failed(r, host, #host, 500, msg, #msg)
    end
  end

  --- The number of retries for this request (0 to 32767).
  -- @function kong.service.set_retries
  -- @phases access
  function S.set_retries(retries)
    local r = get_req()
    check_phase(access_only, r)
    if type(retries) ~= "number" or floor(retries) ~= retries then
      error("retries must be an integer", 2)
    end
    if retries < 0 or retries > 32767 then
      error("retries must be an integer between 0 and 32767: given " .. retries, 2)
    end
    C.tg_pdk_svc_set_retries(need(r), retries)
  end

  local function check_timeout(name, v)
    if type(v) ~= "number" or floor(v) ~= v then
      error(name .. " must be an integer", 3)
    end
    if v < 1 or v > 2147483646 then
      error(name .. " must be an integer between 1 and 2147483646: given " .. v, 3)
    end
  end

  --- The connect, write and read timeouts (ms) for this request.
  -- @function kong.service.set_timeouts
  -- @phases access
  function S.set_timeouts(connect_timeout, write_timeout, read_timeout)
    local r = get_req()
    check_phase(access_only, r)
    check_timeout("connect_timeout", connect_timeout)
    check_timeout("write_timeout", write_timeout)
    check_timeout("read_timeout", read_timeout)
    C.tg_pdk_svc_set_timeouts(need(r), connect_timeout, write_timeout, read_timeout)
  end

  --- The client certificate and key this request presents to a TLS upstream.
  -- tollgate: `chain` is an X509* (a resty.openssl x509 object's `ctx`, the
  -- leaf only) and `key` an EVP_PKEY* (a resty.openssl pkey's `ctx`), where
  -- Kong takes ngx.ssl.parse_pem_cert/parse_pem_priv_key's cdata (ngx.ssl is
  -- not shipped). Returns true, or nil and an error.
  -- @function kong.service.set_tls_cert_key
  -- @phases rewrite, access, balancer, preread
  function S.set_tls_cert_key(chain, key)
    local r = get_req()
    check_phase(access_rewrite_balancer_preread, r)
    if type(chain) ~= "cdata" then
      error("chain must be a parsed cdata object", 2)
    end
    if type(key) ~= "cdata" then
      error("key must be a parsed cdata object", 2)
    end
    require "tollgate.openssl" -- X509 and EVP_PKEY
    if not ffi.istype("X509 *", chain) then
      return nil, "chain must be an X509* (a resty.openssl x509 object's ctx)"
    end
    if not ffi.istype("EVP_PKEY *", key) then
      return nil, "key must be an EVP_PKEY* (a resty.openssl pkey object's ctx)"
    end
    if C.tg_pdk_svc_set_tls_cert_key(need(r), chain, key) ~= 0 then
      return nil, "key does not match the certificate"
    end
    return true
  end

  --- Whether this request verifies the upstream's certificate (TLS upstreams).
  -- @function kong.service.set_tls_verify
  -- @phases rewrite, access, balancer, preread
  function S.set_tls_verify(on)
    local r = get_req()
    check_phase(access_rewrite_balancer_preread, r)
    if type(on) ~= "boolean" then
      error("argument must be a boolean", 2)
    end
    C.tg_pdk_svc_set_tls_verify(need(r), on and 1 or 0)
    return true
  end

  --- The verification depth for this request's upstream certificate.
  -- @function kong.service.set_tls_verify_depth
  -- @phases rewrite, access, balancer, preread
  function S.set_tls_verify_depth(depth)
    local r = get_req()
    check_phase(access_rewrite_balancer_preread, r)
    if type(depth) ~= "number" then
      error("argument must be a number", 2)
    end
    C.tg_pdk_svc_set_tls_verify_depth(need(r), floor(depth))
    return true
  end

  --- Not supported: Kong takes a resty.openssl.x509.store object, and that
  -- module is not shipped (a service's ca_certificates set the trusted CAs).
  -- @function kong.service.set_tls_verify_store
  -- @phases rewrite, access, balancer, preread
  function S.set_tls_verify_store(store)
    check_phase(access_rewrite_balancer_preread, get_req())
    if type(store) ~= "table" then
      error("argument must be a resty.openssl.x509.store object", 2)
    end
    error("kong.service.set_tls_verify_store is not supported: resty.openssl.x509.store is "
          .. "not shipped (use the service's ca_certificates)", 2)
  end

  local _ = tostring
  return S
end

return { new = new }
