-- certificates: Kong 3.10's certificate entity (snis given inline are transient).
local typedefs = require "kong.db.schema.typedefs"

local function util()
  return require "tollgate.c.util"
end

local function pair_matches(cert, key)
  local info = util().x509_info(cert)
  local pub = util().pkey_public_pem(key)
  return info ~= nil and pub ~= nil and info.pubkey == pub
end

return {
  name = "certificates",
  primary_key = { "id" },
  workspaceable = true,
  fields = {
    { id = typedefs.uuid },
    { created_at = typedefs.auto_timestamp_s },
    { updated_at = typedefs.auto_timestamp_s },
    { cert = typedefs.certificate { required = true, referenceable = true } },
    { key = typedefs.key { required = true, referenceable = true, encrypted = true } },
    { cert_alt = typedefs.certificate { required = false, referenceable = true } },
    { key_alt = typedefs.key { required = false, referenceable = true, encrypted = true } },
    { tags = typedefs.tags },
    { snis = { type = "array", elements = typedefs.wildcard_host, required = false,
               transient = true } },
  },
  entity_checks = {
    { mutually_required = { "cert_alt", "key_alt" } },
    { custom_entity_check = {
        field_sources = { "cert", "key" },
        fn = function(entity)
          if not pair_matches(entity.cert, entity.key) then
            return nil, "certificate does not match key"
          end
          return true
        end,
    } },
    { custom_entity_check = {
        field_sources = { "cert_alt", "key_alt" },
        fn = function(entity)
          if type(entity.cert_alt) == "string" and type(entity.key_alt) == "string"
             and not pair_matches(entity.cert_alt, entity.key_alt) then
            return nil, "alternative certificate does not match key"
          end
          return true
        end,
    } },
    { custom_entity_check = {
        field_sources = { "cert", "cert_alt" },
        fn = function(entity)
          if type(entity.cert) == "string" and type(entity.cert_alt) == "string" then
            local a, b = util().x509_info(entity.cert), util().x509_info(entity.cert_alt)
            if a and b and a.key_type == b.key_type then
              return nil, "certificate and alternative certificate need to have " ..
                          "different type (e.g. RSA and ECDSA), the provided " ..
                          "certificates were both of the same type"
            end
          end
          return true
        end,
    } },
  },
}
