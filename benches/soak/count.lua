-- wrk script for benches/soak.sh: counts responses per second and status, and writes them to
-- $SOAK_OUT when wrk stops ("<unix second> <status> <count>" lines, then "requests", "errors").
--   SOAK_TOKEN   every request carries "Authorization: Bearer $SOAK_TOKEN"
--   SOAK_UNIQUE  "1": every request carries a token never sent before (uncached userinfo)
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

counts = {} -- global: done() reads it with thread:get
local n = 0
local salt = tostring(os.time())
local unique = os.getenv("SOAK_UNIQUE") == "1"
local token = os.getenv("SOAK_TOKEN")

function init(args)
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

if unique then
  function request()
    n = n + 1
    return wrk.format(nil, nil, { ["Authorization"] = "Bearer soak-" .. salt .. "-" .. id .. "-" .. n })
  end
end

function response(status, headers, body)
  local key = os.time() * 1000 + status
  counts[key] = (counts[key] or 0) + 1
end

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("SOAK_OUT"), "w"))
  for _, t in ipairs(threads) do
    for key, c in pairs(t:get("counts")) do
      out:write(string.format("%d %d %d\n", math.floor(key / 1000), key % 1000, c))
    end
  end
  local e = summary.errors
  out:write(string.format("requests %d\n", summary.requests))
  out:write(string.format("errors connect=%d read=%d write=%d timeout=%d\n", e.connect, e.read, e.write, e.timeout))
  out:close()
end
