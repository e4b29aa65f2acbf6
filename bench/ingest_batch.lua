-- wrk script for bench/ingest.py: POST /v1/events:batch, BATCH events a request.
-- MOVIES (comma-separated ids), TOKENS (comma-separated service tokens, each its own caller) and
-- BATCH come from the environment. Each thread builds 16 bodies once (random users and movies,
-- no event ids: the service assigns one per event, so a repeated body is new events) and takes
-- them in turn, so the load generator spends its CPU on requests, not on JSON.
local movies = {}
for id in string.gmatch(os.getenv("MOVIES") or "1", "%d+") do movies[#movies + 1] = id end
local tokens = {}
for t in string.gmatch(os.getenv("TOKENS") or "", "[^,]+") do tokens[#tokens + 1] = t end
local batch = tonumber(os.getenv("BATCH") or "200")
local user_base = tonumber(os.getenv("USER_BASE") or "7000000000")
-- DELAY_MS > 0 paces the load: each connection waits that long after an answer before its next
-- request (the rate is then about connections * BATCH / (DELAY_MS + latency)).
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
local types = { "EVENT_TYPE_VIEW", "EVENT_TYPE_CLICK", "EVENT_TYPE_WATCH", "EVENT_TYPE_LIKE" }
local bodies = {}
local counter = 0
local client = 0
local rejected = 0

function setup(thread)
  client = client + 1
  thread:set("tid", client)
end

function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919)
  for b = 1, 16 do
    local events = {}
    for i = 1, batch do
      events[i] = string.format(
        '{"userId":%d,"movieId":%s,"type":"%s"}',
        user_base + math.random(0, 9999), movies[math.random(#movies)], types[math.random(#types)]
      )
    end
    bodies[b] = '{"events":[' .. table.concat(events, ",") .. ']}'
  end
end

request = function()
  counter = counter + 1
  local headers = {
    ["content-type"] = "application/json",
    ["authorization"] = "Bearer " .. tokens[(counter + (tid or 0)) % #tokens + 1],
  }
  return wrk.format("POST", "/v1/events:batch", headers, bodies[counter % #bodies + 1])
end

if delay_ms > 0 then
  delay = function()
    return delay_ms
  end
end

done = function(summary, latency, requests)
  io.write(string.format("LATENCY_P50_MS %.2f\n", latency:percentile(50) / 1000))
  io.write(string.format("LATENCY_P99_MS %.2f\n", latency:percentile(99) / 1000))
  io.write(string.format("NON2XX %d\n", summary.errors.status))
end
