#!/usr/bin/env bash
# Writes a throw-away OBS Studio home for a headless publish (tools/obs-headless.sh):
#   obs-home.sh HOME_DIR RTMP_SERVER_URL STREAM_KEY CLIP_FILE
# One profile "LiveHubCapture": custom RTMP server (OBS publishes to SERVER/KEY), advanced output,
# x264 veryfast main CBR 1000 kbps, keyframe every 1 s, 640x360 30 fps, AAC 128 kbps 48 kHz stereo.
# One scene collection "LiveHubCapture": a looping media source playing CLIP_FILE (absolute path).
# FirstRun=true and no update check, so that OBS starts without a wizard or a dialog.
set -euo pipefail
home=$1; server=$2; key=$3; clip=$4
config=$home/.config/obs-studio
mkdir -p "$config/basic/profiles/LiveHubCapture" "$config/basic/scenes"
cat > "$config/global.ini" <<INI
[General]
FirstRun=true
LastVersion=486539266
EnableAutoUpdates=false
ConfirmOnExit=false

[BasicWindow]
SysTrayEnabled=false
WarnBeforeStartingStream=false
WarnBeforeStoppingStream=false
INI
cat > "$config/basic/profiles/LiveHubCapture/basic.ini" <<INI
[General]
Name=LiveHubCapture

[Video]
BaseCX=640
BaseCY=360
OutputCX=640
OutputCY=360
FPSType=0
FPSCommon=30

[Audio]
SampleRate=48000
ChannelSetup=Stereo

[Output]
Mode=Advanced

[AdvOut]
Encoder=obs_x264
ApplyServiceSettings=false
TrackIndex=1
FFABitrate=128
Track1Bitrate=128
INI
cat > "$config/basic/profiles/LiveHubCapture/streamEncoder.json" <<JSON
{"rate_control":"CBR","bitrate":1000,"preset":"veryfast","profile":"main","keyint_sec":1}
JSON
cat > "$config/basic/profiles/LiveHubCapture/service.json" <<JSON
{"type":"rtmp_custom","settings":{"server":"$server","key":"$key","use_auth":false}}
JSON
cat > "$config/basic/scenes/LiveHubCapture.json" <<JSON
{
  "name": "LiveHubCapture",
  "current_scene": "Scene", "current_program_scene": "Scene",
  "scene_order": [{"name": "Scene"}],
  "sources": [
    {"id": "scene", "versioned_id": "scene", "name": "Scene", "enabled": true, "mixers": 0,
     "settings": {"id_counter": 1, "custom_size": false,
       "items": [{"name": "Clip", "id": 1, "visible": true, "locked": false, "rot": 0.0,
                  "pos": {"x": 0.0, "y": 0.0}, "scale": {"x": 1.0, "y": 1.0}, "align": 5,
                  "bounds_type": 0, "bounds": {"x": 0.0, "y": 0.0}, "bounds_align": 0}]}},
    {"id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": "Clip", "enabled": true,
     "mixers": 255, "volume": 1.0, "muted": false,
     "settings": {"is_local_file": true, "local_file": "$clip",
                  "looping": true, "restart_on_activate": true}}
  ]
}
JSON

