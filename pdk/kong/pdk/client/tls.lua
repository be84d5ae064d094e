--- kong.client.tls: the client's TLS connection, as Kong 3.10's.
-- tollgate: `request_client_certificate(ca_certs)` takes the CA certificates
-- as a PEM string (one or more certificates), a resty.openssl x509 object or a
-- list of them, or nil, where Kong takes a resty.openssl x509.chain's cdata
-- (x509.chain is not shipped yet).
-- @module kong.client.tls
local base = require "kong.pdk.private.base"
local ffi = require "ffi"

ffi.cdef [[
  int tg_pdk_tls_request_client_certificate(tg_req_t *r, const char *ca_pem, size_t len);
  int tg_pdk_tls_disable_session_reuse(tg_req_t *r);
  int tg_pdk_tls_get_client_chain(tg_req_t *r, const char **out, size_t *len);
]]

local C = base.C
local s1, n1 = base.s1, base.n1
local get_req = base.get_req
local check_phase = base.check_phase
local PHASES = base.PHASES
local ffi_string = ffi.string
local type = type
local error = error
local tostring = tostring
local ipairs = ipairs

local REWRITE_AND_LATER = base.phases("rewrite", "access", "response", "balancer", "log")
local REWRITE_BEFORE_LOG = base.phases("rewrite", "access", "response", "balancer")
local NOT_TLS = "connection is not TLS or TLS support for Nginx not enabled"

local function new()
  local TLS = {}

  --- Asks the client for a certificate during the handshake (any is taken;
  -- judge it later with get_full_client_certificate_chain).
  -- @function kong.client.tls.request_client_certificate
  -- @phases certificate
  -- @tparam[opt] string ca_certs PEM CA certificates named in the request
  -- @treturn true|nil
  -- @treturn nil|string error
  function TLS.request_client_certificate(ca_certs)
    local r = get_req()
    check_phase(PHASES.certificate, r)
    if type(ca_certs) == "table" then
      local pems = {}
      for i, x in ipairs(ca_certs.to_PEM and { ca_certs } or ca_certs) do
        local pem = type(x) == "table" and x.to_PEM and x:to_PEM() or nil
        if not pem then
          return nil, "ca_certs[" .. i .. "] is not an x509 certificate"
        end
        pems[#pems + 1] = pem
      end
      ca_certs = table.concat(pems)
    elseif ca_certs ~= nil and type(ca_certs) ~= "string" then
      return nil, "ca_certs must be PEM, an x509 object or a list of them"
    end
    local rc = C.tg_pdk_tls_request_client_certificate(r, ca_certs, ca_certs and #ca_certs or 0)
    if rc == -1 then
      return nil, NOT_TLS
    elseif rc ~= 0 then
      return nil, "invalid ca_certs: no certificate in it"
    end
    return true
  end

  --- Keeps this connection's session from being resumed (no ticket, no
  -- cache entry).
  -- @function kong.client.tls.disable_session_reuse
  -- @phases certificate
  function TLS.disable_session_reuse()
    local r = get_req()
    check_phase(PHASES.certificate, r)
    if C.tg_pdk_tls_disable_session_reuse(r) ~= 0 then
      return nil, NOT_TLS
    end
    return true
  end

  --- The client's certificate and the chain it sent, PEM; nil when it sent
  -- none.
  -- @function kong.client.tls.get_full_client_certificate_chain
  -- @phases rewrite, access, response, balancer, log
  function TLS.get_full_client_certificate_chain()
    local r = get_req()
    check_phase(REWRITE_AND_LATER, r)
    local rc = C.tg_pdk_tls_get_client_chain(r, s1, n1)
    if rc == -1 then
      return nil, NOT_TLS
    elseif rc == 0 then
      return nil
    elseif rc < 0 then
      return nil, "could not encode the client certificate chain"
    end
    return ffi_string(s1[0], n1[0])
  end

  --- Overrides the verification result logged for the client certificate
  -- (ngx.var.ssl_client_verify then says it).
  -- @function kong.client.tls.set_client_verify
  -- @phases rewrite, access, response, balancer
  -- @tparam string v "SUCCESS", "NONE" or "FAILED:<reason>"
  function TLS.set_client_verify(v)
    check_phase(REWRITE_BEFORE_LOG, get_req())
    assert(type(v) == "string")
    if v ~= "SUCCESS" and v ~= "NONE" and v:sub(1, 7) ~= "FAILED:" then
      error("unknown client verify value: " .. tostring(v) ..
            " accepted values are: \"SUCCESS\", \"NONE\"" ..
            " or \"FAILED:<reason>\"", 2)
    end
    ngx.ctx.CLIENT_VERIFY_OVERRIDE = v
  end

  return TLS
end

return { new = new }
