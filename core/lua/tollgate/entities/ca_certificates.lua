-- ca_certificates: Kong 3.10's CA certificate entity (global, not workspaced).
-- cert_digest is the SHA-256 of the DER certificate, filled at load.
local typedefs = require "kong.db.schema.typedefs"

local CERT_TAG = "-----BEGIN CERTIFICATE-----"

return {
  name = "ca_certificates",
  primary_key = { "id" },
  fields = {
    { id = typedefs.uuid },
    { created_at = typedefs.auto_timestamp_s },
    { updated_at = typedefs.auto_timestamp_s },
    { cert = typedefs.certificate { required = true } },
    { cert_digest = { type = "string", unique = true } },
    { tags = typedefs.tags },
  },
  digest = function(cert)
    local info = require("tollgate.c.util").x509_info(cert)
    return info and info.sha256
  end,
  entity_checks = {
    { custom_entity_check = {
        field_sources = { "cert" },
        fn = function(entity)
          local cert = entity.cert
          local seen = cert:find(CERT_TAG, 1, true)
          if seen and cert:find(CERT_TAG, seen + #CERT_TAG + 1, true) then
            return nil, "please submit only one certificate at a time"
          end
          local info = require("tollgate.c.util").x509_info(cert)
          if not info then
            return nil, "invalid certificate"
          end
          if info.not_after and info.not_after < os.time() then
            return nil, "certificate expired, \"Not After\" time is in the past"
          end
          if not info.is_ca then
            return nil, "certificate does not appear to be a CA because " ..
                        "it is missing the \"CA\" basic constraint"
          end
          return true
        end,
    } },
  },
}
