-- PUT /api/v1/disposition/<id>/: replaces the comments of the agent's dispositions listed in
-- a file (one "id contact option" per line), taking them in turn.
-- args: token path_of_the_list
dofile("report.lua")
local rows, k

function init(args)
  use_token(args[1])
  rows = {}
  for line in io.lines(args[2]) do
    local id, contact, option = line:match("(%d+) (%d+) (%d+)")
    table.insert(rows, {id, contact, option})
  end
  k = tid
end

function request()
  local row = rows[k % #rows + 1]
  k = k + 1
  local body = string.format(
    '{"idContact": %s, "idDispositionOption": %s, "comments": "update %d", "callid": null}',
    row[2], row[3], k)
  return wrk.format("PUT", "/api/v1/disposition/" .. row[1] .. "/", nil, body)
end
