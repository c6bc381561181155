-- wrk script for the baseline: the same 1 KiB JSON POSTed through nginx straight to the emulator.
local pad = string.rep("x", 1024)
local counter = 0
function setup(thread)
  thread:set("tid", tostring(math.random(1, 1e9)))
end
request = function()
  counter = counter + 1
  local id = string.format("00000000-0000-7000-8000-%012d", counter + tonumber(tid) * 1000)
  local body = '{"id":"' .. id .. '","kind":"http.post","to":"bench","client":"b","document":{"pad":"' .. pad .. '"},"attachments":[],"signatures":[],"created_at":"2026-01-01T00:00:00Z","attempt":1}'
  return wrk.format("POST", "/deliver", {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = id,
  }, body)
end
