// A small STOMP 1.2 client over a browser WebSocket (the subset @stomp/stompjs uses):
// CONNECT with heart-beats, SUBSCRIBE (kept across reconnects), SEND with content-length,
// MESSAGE routing by subscription id, ERROR, automatic reconnect with back-off.
// Recovery (issue 22): each subscription remembers the `offset`/`epoch` of the last MESSAGE it got
// and re-subscribes with `recover-offset`/`recover-epoch` after a reconnect; the server sends what
// was missed, then a marker MESSAGE with a `recovered` header (handed to `onRecovery`, not the
// callback): `recovered:false` means the gap could not be filled and the page reloads by REST.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function escapeHeader(value) {
  return String(value).replace(/\\/g, '\\\\').replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/:/g, '\\c');
}

function unescapeHeader(value) {
  return value.replace(/\\(.)/g, (_, c) => ({ r: '\r', n: '\n', c: ':', '\\': '\\' }[c] ?? c));
}

/** Serialises one frame to a string. */
export function encodeFrame(command, headers = {}, body = '') {
  const escape = command !== 'CONNECT' && command !== 'STOMP';
  let text = command + '\n';
  for (const [key, value] of Object.entries(headers)) {
    if (value === undefined || value === null) continue;
    text += (escape ? escapeHeader(key) : key) + ':' + (escape ? escapeHeader(value) : value) + '\n';
  }
  return text + '\n' + body + '\0';
}

/** Parses every frame in one WebSocket message (bytes); returns [{command, headers, body}] (heart-beats skipped). */
export function decodeFrames(bytes) {
  const frames = [];
  let i = 0;
  while (i < bytes.length) {
    while (i < bytes.length && (bytes[i] === 10 || bytes[i] === 13)) i++; // heart-beats / EOLs
    if (i >= bytes.length) break;
    // Header block ends at the first empty line.
    let end = -1;
    for (let j = i; j < bytes.length - 1; j++) {
      if (bytes[j] === 10 && bytes[j + 1] === 10) { end = j; break; }
      if (bytes[j] === 10 && bytes[j + 1] === 13 && bytes[j + 2] === 10) { end = j; break; }
    }
    if (end < 0) break;
    const head = decoder.decode(bytes.subarray(i, end)).replace(/\r/g, '');
    let bodyStart = end + (bytes[end + 1] === 13 ? 3 : 2);
    const lines = head.split('\n');
    const command = lines[0];
    const headers = {};
    const escaped = command !== 'CONNECTED';
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const key = escaped ? unescapeHeader(line.slice(0, colon)) : line.slice(0, colon);
      if (!(key in headers)) headers[key] = escaped ? unescapeHeader(line.slice(colon + 1)) : line.slice(colon + 1);
    }
    let bodyEnd;
    if (headers['content-length'] !== undefined && !Number.isNaN(parseInt(headers['content-length'], 10))) {
      bodyEnd = bodyStart + parseInt(headers['content-length'], 10);
      i = bodyEnd + 1; // skip the NUL
    } else {
      bodyEnd = bytes.indexOf(0, bodyStart);
      if (bodyEnd < 0) bodyEnd = bytes.length;
      i = bodyEnd + 1;
    }
    frames.push({ command, headers, body: decoder.decode(bytes.subarray(bodyStart, bodyEnd)) });
  }
  return frames;
}

/** Whether `headers` (offset, epoch) is past `position`: another epoch, or a larger offset (decimal strings up to 19 digits: compared as text, not as lossy Numbers). */
function laterPosition(position, headers) {
  if (!position || position.epoch !== headers.epoch) return true;
  const a = position.offset;
  const b = headers.offset;
  return b.length !== a.length ? b.length > a.length : b > a;
}

export class StompClient {
  /**
   * @param {string} url ws(s)://host/ws/live
   * @param {{token?: string, heartbeat?: number, onConnect?: Function, onDisconnect?: Function, onError?: Function, debug?: boolean}} options
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    this.token = options.token || '';
    this.heartbeat = options.heartbeat ?? 10000;
    this.subscriptions = new Map(); // id -> {destination, callback}
    this.nextId = 0;
    this.connected = false;
    this.active = false;
    this.retry = 0;
    this.ws = null;
    this.timers = [];
  }

  activate() {
    this.active = true;
    this.open();
  }

  deactivate() {
    this.active = false;
    this.clearTimers();
    if (this.ws) {
      try { if (this.connected) this.ws.send(encodeFrame('DISCONNECT', {})); } catch { /* closing */ }
      this.ws.close();
    }
    this.ws = null;
    this.connected = false;
  }

  /** Reconnects with a new token (sign-in / sign-out). */
  setToken(token) {
    this.token = token || '';
    if (this.active) { this.deactivate(); this.activate(); }
  }

  clearTimers() {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }

  open() {
    const ws = new WebSocket(this.url, ['v12.stomp', 'v11.stomp', 'v10.stomp']);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      const headers = { 'accept-version': '1.2,1.1,1.0', host: location.hostname, 'heart-beat': `${this.heartbeat},${this.heartbeat}` };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      ws.send(encodeFrame('CONNECT', headers));
    };
    ws.onmessage = (event) => {
      this.lastReceived = Date.now();
      const bytes = typeof event.data === 'string' ? encoder.encode(event.data) : new Uint8Array(event.data);
      for (const frame of decodeFrames(bytes)) this.handle(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      const was = this.connected;
      this.connected = false;
      this.clearTimers();
      if (was && this.options.onDisconnect) this.options.onDisconnect();
      if (!this.active) return;
      const delay = Math.min(15000, 500 * 2 ** this.retry++) * (0.75 + Math.random() * 0.5);
      setTimeout(() => { if (this.active && this.ws === ws) this.open(); }, delay);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  handle(frame) {
    switch (frame.command) {
      case 'CONNECTED': {
        this.connected = true;
        this.retry = 0;
        this.session = frame.headers.session;
        this.startHeartbeats(frame.headers['heart-beat'] || '0,0');
        for (const [id, sub] of this.subscriptions) this.sendSubscribe(id, sub.destination, sub.position);
        if (this.options.onConnect) this.options.onConnect(frame);
        break;
      }
      case 'MESSAGE': {
        const sub = this.subscriptions.get(frame.headers.subscription)
          || Array.from(this.subscriptions.values()).find((s) => s.destination === frame.headers.destination);
        if (!sub) return;
        if (frame.headers.offset !== undefined && frame.headers.epoch && laterPosition(sub.position, frame.headers)) {
          sub.position = { offset: frame.headers.offset, epoch: frame.headers.epoch };
        }
        if (frame.headers.recovered !== undefined) {
          const recovered = frame.headers.recovered === 'true';
          if (sub.onRecovery) { try { sub.onRecovery(recovered, frame); } catch (error) { console.error('STOMP recovery handler failed', error); } }
          break;
        }
        let payload = frame.body;
        if ((frame.headers['content-type'] || 'application/json').includes('json')) {
          try { payload = JSON.parse(frame.body); } catch { /* leave as text */ }
        }
        try { sub.callback(payload, frame); } catch (error) { console.error('STOMP handler failed', error); }
        break;
      }
      case 'ERROR': {
        // An ERROR before CONNECTED is a refused CONNECT (e.g. a bad token): the caller decides.
        if (this.options.onError) this.options.onError(frame.headers.message || frame.body, frame, this.connected);
        break;
      }
      default:
        break;
    }
  }

  startHeartbeats(serverHeader) {
    const [sx, sy] = serverHeader.split(',').map((n) => parseInt(n, 10) || 0);
    const outgoing = this.heartbeat && sy ? Math.max(this.heartbeat, sy) : 0;
    const incoming = this.heartbeat && sx ? Math.max(this.heartbeat, sx) : 0;
    if (outgoing) {
      this.timers.push(setInterval(() => { if (this.ws && this.ws.readyState === 1) this.ws.send('\n'); }, outgoing));
    }
    if (incoming) {
      this.lastReceived = Date.now();
      this.timers.push(setInterval(() => {
        if (Date.now() - this.lastReceived > incoming * 2.5 && this.ws) this.ws.close(); // reconnects
      }, incoming));
    }
  }

  sendSubscribe(id, destination, position) {
    const headers = { id, destination, ack: 'auto' };
    if (position) { headers['recover-offset'] = position.offset; headers['recover-epoch'] = position.epoch; }
    this.ws.send(encodeFrame('SUBSCRIBE', headers));
  }

  /**
   * Subscribes (now, and again after every reconnect, recovering what was missed); returns an
   * unsubscribe function. `options.onRecovery(recovered, frame)` is told how each recovery ended.
   */
  subscribe(destination, callback, options = {}) {
    const id = `sub-${this.nextId++}`;
    this.subscriptions.set(id, { destination, callback, onRecovery: options.onRecovery, position: null });
    if (this.connected) this.sendSubscribe(id, destination);
    return () => {
      this.subscriptions.delete(id);
      if (this.connected) this.ws.send(encodeFrame('UNSUBSCRIBE', { id }));
    };
  }

  /** SENDs a JSON body; returns false when not connected. */
  publish(destination, body = {}) {
    if (!this.connected) return false;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    this.ws.send(encodeFrame('SEND', { destination, 'content-type': 'application/json', 'content-length': encoder.encode(text).length }, text));
    return true;
  }
}
