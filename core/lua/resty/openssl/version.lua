-- resty.openssl.version (lua-resty-openssl's API): the linked OpenSSL's
-- version_num, version_text, version(type), info(type), the VERSION...
-- and INFO_... type constants and the OPENSSL_* series flags.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"

local C = ossl.C
local ffi_str = ffi.string

local version_num = tonumber(C.OpenSSL_version_num())

local _M = {
  VERSION = 0, CFLAGS = 1, BUILT_ON = 2, PLATFORM = 3, DIR = 4, ENGINES_DIR = 5,
  VERSION_STRING = 6, FULL_VERSION_STRING = 7, MODULES_DIR = 8, CPU_INFO = 9,
  INFO_CONFIG_DIR = 1001, INFO_ENGINES_DIR = 1002, INFO_MODULES_DIR = 1003,
  INFO_DSO_EXTENSION = 1004, INFO_DIR_FILENAME_SEPARATOR = 1005,
  INFO_LIST_SEPARATOR = 1006, INFO_SEED_SOURCE = 1007, INFO_CPU_SETTINGS = 1008,
}

_M.version_num = version_num
_M.version_text = ffi_str(C.OpenSSL_version(0))
_M.OPENSSL_30 = version_num >= 0x30000000 and version_num < 0x30100000
_M.OPENSSL_3X = version_num >= 0x30000000 and version_num < 0x40000000
_M.OPENSSL_4X = version_num >= 0x40000000 and version_num < 0x50000000
_M.OPENSSL_3_UP = version_num >= 0x30000000
_M.OPENSSL_111 = version_num >= 0x10101000 and version_num < 0x10200000
_M.BORINGSSL = false

--- OpenSSL_version(type) as a string.
function _M.version(t)
  return ffi_str(C.OpenSSL_version(t))
end

--- OPENSSL_info(type) as a string (nil when the build has none).
function _M.info(t)
  local s = C.OPENSSL_info(t)
  if s == nil then
    return nil
  end
  return ffi_str(s)
end

return _M
