#!/usr/bin/env bash
# Starts nginx with libnginx-mod-rtmp on 127.0.0.1:$2 in the temp dir $1 (config written there),
# application "live", recording every publish to $1/rec/*.flv. Prints nginx's pid.
set -euo pipefail
dir=$1; port=$2
mkdir -p "$dir/rec" "$dir/logs"
cat > "$dir/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
user root;
pid $dir/nginx.pid;
error_log $dir/logs/error.log info;
events { worker_connections 64; }
rtmp {
  server {
    listen 127.0.0.1:$port;
    chunk_size 4096;
    application live {
      live on;
      record all;
      record_path $dir/rec;
      record_unique off;
    }
  }
}
CONF
nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/logs/stdout.log" 2>&1 &
echo $!
