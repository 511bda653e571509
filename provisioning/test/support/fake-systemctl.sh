#!/bin/sh
# A stand-in for `systemctl restart paylane-device.service` in the update CLI's tests and the docs' demo:
# stops the running fake daemon, starts $PAYLANE_ROOT/opt/paylane/current/app/paylane-device.mjs (as the unit's
# ExecStart does, through the symlink), and returns once it says READY (a Type=notify unit's READY=1), or fails
# when it exits first, as systemctl does.
set -eu
[ "${1:-}" = restart ] || { echo "fake systemctl: only restart" >&2; exit 2; }
run="$PAYLANE_ROOT/run"
mkdir -p "$run"
if [ -f "$run/daemon.pid" ]; then
  kill "$(cat "$run/daemon.pid")" 2>/dev/null || true
  rm -f "$run/daemon.pid"
fi
cd "$PAYLANE_ROOT/opt/paylane/current"
: >"$run/daemon.out"
node app/paylane-device.mjs >"$run/daemon.out" 2>&1 &
pid=$!
echo "$pid" >"$run/daemon.pid"
i=0
while [ $i -lt 100 ]; do
  if grep -q '^READY' "$run/daemon.out"; then exit 0; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "Job for paylane-device.service failed because the control process exited with error code." >&2
    exit 1
  fi
  sleep 0.1
  i=$((i + 1))
done
echo "Job for paylane-device.service failed because a timeout was exceeded." >&2
exit 1
