-- wrk script for bench/freshness.py: POST /v1/events with varied users and movies.
-- MOVIES (comma-separated ids) and TOKENS (comma-separated service tokens, each its own caller)
-- come from the environment; requests take the tokens in turn, as many backends would, so
-- Envoy's per-caller limit does not throttle the load generator as if it were one abusive caller.
local movies = {}
for id in string.gmatch(os.getenv("MOVIES") or "1", "%d+") do movies[#movies + 1] = id end
local tokens = {}
for t in string.gmatch(os.getenv("TOKENS") or "", "[^,]+") do tokens[#tokens + 1] = t end
local user_base = tonumber(os.getenv("USER_BASE") or "7000000000")
local types = { "EVENT_TYPE_VIEW", "EVENT_TYPE_CLICK", "EVENT_TYPE_WATCH", "EVENT_TYPE_LIKE" }
local counter = 0
local client = 0

function setup(thread)
  client = client + 1
  thread:set("tid", client)
end

function init(args)
  math.randomseed(os.time() + (tid or 0))
end

request = function()
  counter = counter + 1
  local user = user_base + math.random(0, 9999)
  local body = string.format(
    '{"userId":%d,"movieId":%s,"type":"%s"}',
    user, movies[math.random(#movies)], types[math.random(#types)]
  )
  local headers = {
    ["content-type"] = "application/json",
    ["authorization"] = "Bearer " .. tokens[(counter + (tid or 0)) % #tokens + 1],
  }
  return wrk.format("POST", "/v1/events", headers, body)
end


done = function(summary, latency, requests)
  io.write(string.format("LATENCY_P50_MS %.2f\n", latency:percentile(50) / 1000))
  io.write(string.format("LATENCY_P99_MS %.2f\n", latency:percentile(99) / 1000))
  io.write(string.format("NON2XX %d\n", summary.errors.status))
end
