-- POST /api/v1/disposition/ on a distinct (contact, campaign) pair per request.
-- args: token base stride first_contact_id n_contacts first_option_id
-- Index i rates contact first + i % n with option first_option + floor(i / n): the bench
-- provisions one option per extra campaign, all on the same contact database.
dofile("report.lua")
local first_contact, n, first_option

function init(args)
  use_token(args[1])
  start_indexes(args[2], args[3])
  first_contact, n, first_option = tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
end

function request()
  local index = next_index()
  local body = string.format(
    '{"idContact": %d, "idDispositionOption": %d, "comments": "bench", "callid": "b%d"}',
    first_contact + index % n, first_option + math.floor(index / n), index)
  return wrk.format("POST", "/api/v1/disposition/", nil, body)
end
