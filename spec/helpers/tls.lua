-- spec.helpers.tls: real TLS clients (openssl s_client, curl --resolve) and
-- throwaway certificates made with the openssl CLI, for the TLS specs.
--
--   local tls = require "spec.helpers.tls"
--   tls.port                      -- the spec's ssl proxy port (TOLLGATE_SPEC_PORT + 443)
--   tls.curl(path, { sni = "a.test", args = "-v" })  -> status, body, stderr
--   tls.s_client(args, input)     -> stdout .. stderr
--   tls.make_ca(dir, name) / tls.make_cert(dir, name, { cn =, san =, ca =, ec = })
--   tls.start_upstream(port, cert, { ca = }) / tls.stop_upstream(pid)
local helpers = require "spec.helpers"
local pl_file = require "pl.file"
local pl_dir = require "pl.dir"

local q = helpers.shell_quote
local M = {}

M.port = helpers.test_conf.proxy_port + 443
M.listen = helpers.test_conf.proxy_listen .. ", 127.0.0.1:" .. M.port .. " ssl"

local function run(cmd)
  local ok, code, out, err = helpers.execute(cmd)
  return ok, out or "", err or "", code
end
M.run = run

-- curl over https to the ssl listener, the name resolved to 127.0.0.1.
-- opts: sni (host name, default "localhost"), port, args (extra curl args),
-- method, data_file. Returns status (number or nil), body, stderr.
function M.curl(path, opts)
  opts = opts or {}
  local host = opts.sni or "localhost"
  local port = opts.port or M.port
  local cmd = "curl -sS -k --max-time 10 --resolve " .. q(host .. ":" .. port .. ":127.0.0.1")
              .. " -o - -w '\\n%{http_code}' " .. (opts.args or "") .. " "
              .. q("https://" .. host .. ":" .. port .. path)
  local _, out, err = run(cmd)
  local body, status = out:match("^(.*)\n(%d+)$")
  return tonumber(status), body, err
end

-- openssl s_client against the ssl listener; returns stdout and stderr joined.
-- `input` is a shell snippet whose output feeds s_client; by default one
-- request with Connection: close, s_client waiting (-ign_eof) for the server
-- to close, so the handshake always completes or fails before it exits.
local ONE_REQUEST = "printf 'GET /s_client HTTP/1.1\\r\\nHost: localhost\\r\\n"
                    .. "Connection: close\\r\\n\\r\\n'"
function M.s_client(args, input, port)
  local cmd = "(" .. (input or ONE_REQUEST) .. ") | timeout 20 openssl s_client -connect 127.0.0.1:"
              .. (port or M.port) .. " " .. (input and "" or "-ign_eof ") .. (args or "")
  local _, out, err = run(cmd)
  return out .. err
end

-- The protocol and cipher s_client negotiated ("New, TLSv1.3, Cipher is X"
-- or "Reused, ..."), nil when the handshake failed.
function M.negotiated(out)
  local proto, cipher = out:match("\n%a+, (TLSv[%d.]+), Cipher is (%S+)")
  return proto, cipher
end

-- The subject CN of the certificate the server sent for `sni`.
function M.served_cn(sni, extra)
  local out = M.s_client("-servername " .. q(sni) .. " " .. (extra or ""))
  return out:match("subject=[^\n]-CN ?= ?([^,\n/]+)")
end

local function openssl(args)
  local ok, out, err = run("openssl " .. args)
  assert(ok, "openssl " .. args .. ": " .. out .. err)
end

-- A self-signed CA: returns { crt = path, key = path, pem = text }.
function M.make_ca(dir, name)
  pl_dir.makepath(dir)
  local crt, key = dir .. "/" .. name .. ".crt", dir .. "/" .. name .. ".key"
  openssl("req -x509 -newkey rsa:2048 -nodes -days 3650 -subj " .. q("/CN=" .. name)
          .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign"
          .. " -keyout " .. q(key) .. " -out " .. q(crt))
  return { crt = crt, key = key, pem = pl_file.read(crt), key_pem = pl_file.read(key) }
end

-- A leaf certificate: opts.cn, opts.san ("DNS:a.test,IP:127.0.0.1"), opts.ca
-- (from make_ca or make_cert; self-signed without), opts.ec (ECDSA P-256
-- instead of RSA), opts.is_ca (an intermediate CA), opts.chain (append the
-- issuer's certificate to the .crt file, as a server sends its chain).
function M.make_cert(dir, name, opts)
  opts = opts or {}
  pl_dir.makepath(dir)
  local crt, key, csr = dir .. "/" .. name .. ".crt", dir .. "/" .. name .. ".key",
                        dir .. "/" .. name .. ".csr"
  local newkey = opts.ec and "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
                 or "-newkey rsa:2048"
  local subj = q("/CN=" .. (opts.cn or name))
  local ext = dir .. "/" .. name .. ".ext"
  pl_file.write(ext, (opts.is_ca and "basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n"
                     or "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n")
                     .. (opts.san and ("subjectAltName=" .. opts.san .. "\n") or ""))
  if opts.ca then
    openssl("req -new " .. newkey .. " -nodes -subj " .. subj .. " -keyout " .. q(key)
            .. " -out " .. q(csr))
    openssl("x509 -req -days 3650 -in " .. q(csr) .. " -CA " .. q(opts.ca.crt) .. " -CAkey "
            .. q(opts.ca.key) .. " -CAcreateserial -extfile " .. q(ext) .. " -out " .. q(crt))
  else
    local cnf = dir .. "/" .. name .. ".cnf"
    pl_file.write(cnf, "[req]\ndistinguished_name=dn\n[dn]\n[v3]\n" .. pl_file.read(ext))
    openssl("req -x509 " .. newkey .. " -nodes -days 3650 -subj " .. subj .. " -keyout "
            .. q(key) .. " -out " .. q(crt) .. " -extensions v3 -config " .. q(cnf))
  end
  if opts.chain then
    pl_file.write(crt, pl_file.read(crt) .. opts.ca.pem)
  end
  return { crt = crt, key = key, pem = pl_file.read(crt), key_pem = pl_file.read(key) }
end

-- TLS upstreams: tg_echo_server in its TLS mode on `port` (ports relative to
-- TOLLGATE_SPEC_PORT: tls.upstream_port(i) = base + 6590 + i). opts.ca makes
-- it demand a client certificate signed by that CA. Returns the pid.
function M.upstream_port(i)
  return helpers.test_conf.proxy_port + 6590 + (i or 0)
end

function M.start_upstream(port, cert, opts)
  opts = opts or {}
  local cmd = q(helpers.echo_server_bin) .. " -c " .. q(cert.crt) .. " -k " .. q(cert.key)
              .. (opts.ca and (" -C " .. q(opts.ca.crt)) or "") .. " " .. port
              .. " >/dev/null 2>&1 & echo $!"
  local f = io.popen(cmd)
  local pid = tonumber(f:read("*l"))
  f:close()
  helpers.wait_until(function() return helpers.can_connect("127.0.0.1", port) end, 10)
  return pid
end

function M.stop_upstream(pid)
  if pid then
    run("kill " .. pid)
    pcall(helpers.wait_until, function() return not helpers.pid_alive(pid) end, 5)
  end
end

return M
