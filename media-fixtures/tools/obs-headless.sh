#!/usr/bin/env bash
# Starts OBS Studio headless (Xvfb, software GL) streaming at once with the profile and scene
# collection tools/obs-home.sh wrote into $HOME. Runs until killed; start it with
# `setsid` and kill its process group (`kill -- -PID`): xvfb-run does not pass a signal on to OBS. Extra arguments go to obs.
set -euo pipefail
export LIBGL_ALWAYS_SOFTWARE=1
exec xvfb-run -a -s "-screen 0 1280x720x24" \
  obs --startstreaming --profile LiveHubCapture --collection LiveHubCapture \
      --disable-shutdown-check --disable-updater "$@"
