-- wrk script: POST /v1/messages with a 1 KiB document, one unique body per request.
-- DOC_BYTES sets the padding's size instead (default 1024), e.g. for signed documents.
local key = os.getenv("QAQPA_API_KEY")
local doc_bytes = tonumber(os.getenv("DOC_BYTES") or "1024")
if doc_bytes == nil or doc_bytes < 0 then
  error("DOC_BYTES must be a number of bytes, not " .. os.getenv("DOC_BYTES"))
end
local pad = string.rep("x", doc_bytes)
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
