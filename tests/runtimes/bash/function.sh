function handler () {
  EVENT_DATA=$1
  echo "$EVENT_DATA" 1>&2;
  RESPONSE="Echoing request: '$EVENT_DATA'"

  echo $RESPONSE
}

# What a function can see of the router: its environment, its files, its admin API.
function probe () {
  local token_file=$(echo "$1" | sed -n 's/.*"token_file": *"\([^"]*\)".*/\1/p')
  local router_pid=$(echo "$1" | sed -n 's/.*"router_pid": *\([0-9]*\).*/\1/p')
  local admin=$(echo "$1" | sed -n 's/.*"admin": *"\([^"]*\)".*/\1/p')
  local router_vars=$(env | grep -c '^ROUTER_' || true)
  local token=$(cat "$token_file" 2>/dev/null | wc -c)
  local environ=$(tr '\0' '\n' < /proc/$router_pid/environ 2>/dev/null | grep -c ROUTER_ || true)
  local status=$(curl -s -o /dev/null -w '%{http_code}' "$admin/api/v1/functions")
  local bogus=$(curl -s -o /dev/null -w '%{http_code}' -d '{}' "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/not-mine/response")
  echo "{\"router_vars\": $router_vars, \"token_bytes\": $token, \"router_environ\": $environ, \"admin_status\": $status, \"bogus_answer\": $bogus, \"uid\": $(id -u), \"tmp_kb\": $(df -k --output=size /tmp | tail -1)}"
}

# Starts a child in a session of its own, says so, then outlives the function's timeout.
function hang () {
  setsid sleep 300 < /dev/null > /dev/null 2>&1 &
  echo "started $! before hanging" 1>&2
  sleep 30
}

function hog () {
  /usr/bin/python3 -c 'import time; b = bytearray(200 * 1024 * 1024); time.sleep(10)'
  echo '"survived"'
}
