-- wrk script: HTTP/1.1 pipelining. Every write carries DEPTH copies of the
-- request wrk would send (method, path, headers from the command line), so
-- DEPTH requests are in flight per connection; wrk counts each response.
--
--   wrk -t1 -c50 -d10s -s bench/scripts/wrk-pipeline.lua http://127.0.0.1:8080/plaintext -- 16
--
-- DEPTH is the first argument after `--` (default 16).

local batch

function init(args)
  local depth = tonumber(args[1]) or 16
  if depth < 1 then
    depth = 1
  end
  local one = wrk.format()
  local parts = {}
  for i = 1, depth do
    parts[i] = one
  end
  batch = table.concat(parts)
end

function request()
  return batch
end
