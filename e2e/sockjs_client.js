'use strict';
// A STOMP 1.2 client over the real SockJS client (Debian's node-sockjs-client), forced onto one
// transport: what a browser does when its WebSocket is blocked. Driven by the e2e tests.
//
//   NODE_PATH=/usr/share/nodejs node sockjs_client.js BASE_URL TRANSPORT [TOKEN]
//
// TRANSPORT is xhr-streaming, xhr-polling or websocket. The client CONNECTs once SockJS is open
// (with `Authorization: Bearer TOKEN` when given). Commands come on stdin, one JSON object a line:
//   {"subscribe": DESTINATION, "id": ID, "receipt": R}
//   {"send": DESTINATION, "body": TEXT, "receipt": R}
//   {"disconnect": true}    STOMP DISCONNECT    {"close": true}    closes the SockJS socket
// Events go to stdout, one JSON object a line:
//   {"event": "open", "transport": NAME}
//   {"event": "frame", "command": C, "headers": {...}, "body": TEXT}
//   {"event": "close", "code": N, "reason": TEXT}
const SockJS = require('sockjs-client');
const readline = require('readline');

const [url, transport, token] = process.argv.slice(2);

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function frame(command, headers, body) {
  const lines = [command];
  for (const [key, value] of Object.entries(headers || {})) lines.push(`${key}:${value}`);
  return lines.join('\n') + '\n\n' + (body || '') + '\u0000';
}

// Every frame in one SockJS message (heart-beat newlines skipped).
function parse(text) {
  const frames = [];
  let rest = text;
  while (rest.length > 0) {
    rest = rest.replace(/^[\r\n]+/, '');
    if (rest.length === 0) break;
    const end = rest.indexOf('\n\n');
    if (end < 0) break;
    const lines = rest.slice(0, end).split(/\r?\n/);
    const headers = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const key = line.slice(0, colon);
      if (!(key in headers)) headers[key] = line.slice(colon + 1);
    }
    const after = rest.slice(end + 2);
    const nul = after.indexOf('\u0000');
    frames.push({ command: lines[0], headers, body: nul < 0 ? after : after.slice(0, nul) });
    rest = nul < 0 ? '' : after.slice(nul + 1);
  }
  return frames;
}

const sock = new SockJS(url, null, { transports: [transport] });

sock.onopen = () => {
  emit({ event: 'open', transport: sock.transport });
  const headers = { 'accept-version': '1.2,1.1,1.0', 'heart-beat': '0,0' };
  if (token) headers.Authorization = `Bearer ${token}`;
  sock.send(frame('CONNECT', headers));
};

sock.onmessage = (message) => {
  for (const f of parse(message.data)) emit({ event: 'frame', ...f });
};

sock.onclose = (close) => {
  emit({ event: 'close', code: close.code, reason: close.reason });
  process.exit(0);
};

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  if (command.subscribe) {
    const headers = { id: command.id, destination: command.subscribe };
    if (command.receipt) headers.receipt = command.receipt;
    sock.send(frame('SUBSCRIBE', headers));
  } else if (command.send) {
    const headers = { destination: command.send, 'content-type': 'application/json' };
    if (command.receipt) headers.receipt = command.receipt;
    sock.send(frame('SEND', headers, command.body));
  } else if (command.disconnect) {
    sock.send(frame('DISCONNECT', { receipt: 'bye' }));
  } else if (command.close) {
    sock.close();
  }
});
