-- wrk script: POST /v1/messages with a 1 KiB document, one unique body per request.
local key = os.getenv("QAQPA_API_KEY")
local pad = string.rep("x", 1024)
local counter = 0
function setup(thread)
  thread:set("tid", tostring(math.random(1, 1e9)))
end
request = function()
  counter = counter + 1
  local body = '{"kind":"http.post","to":"bench","document":{"n":' .. counter .. ',"t":"' .. tid .. '","pad":"' .. pad .. '"}}'
  return wrk.format("POST", "/v1/messages", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end
