-- POST /api/v1/new_contact/disposition/: a new contact (distinct phone and external id per
-- request) rated with one option. args: token option_id base stride
dofile("report.lua")
local option

function init(args)
  use_token(args[1])
  option = args[2]
  start_indexes(args[3], args[4])
end

function request()
  local index = next_index()
  local body = string.format(
    '{"idDispositionOption": %s, "phone": "8%013d", "idExternalContact": "ncd-%d", "NOMBRE": "Bench", "comments": "bench", "callid": "n%d"}',
    option, index, index, index)
  return wrk.format("POST", "/api/v1/new_contact/disposition/", nil, body)
end
