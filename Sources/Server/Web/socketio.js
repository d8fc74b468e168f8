// A small Socket.IO v4 client (Engine.IO 4, WebSocket transport only), enough for the bell:
// connect to the main namespace with `auth`, answer pings, events, emits with acks, reconnect.

export class SocketIOClient {
  /**
   * @param {string} url ws(s)://host (the path /socket.io/ is added)
   * @param {{auth?: object, lastNotificationId?: () => string|null, onConnect?: Function, onDisconnect?: Function, onConnectError?: Function}} options
   */
  constructor(url, options = {}) {
    this.url = url.replace(/\/$/, '') + '/socket.io/?EIO=4&transport=websocket';
    this.options = options;
    this.handlers = new Map();
    this.acks = new Map();
    this.nextAck = 1;
    this.connected = false;
    this.active = false;
    this.retry = 0;
    this.ws = null;
    this.pingTimer = null;
  }

  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(handler);
    return this;
  }

  connect() {
    this.active = true;
    this.open();
    return this;
  }

  disconnect() {
    this.active = false;
    clearTimeout(this.pingTimer);
    if (this.ws) {
      try { if (this.connected) this.ws.send('41'); } catch { /* closing */ }
      this.ws.close();
    }
    this.ws = null;
    this.connected = false;
  }

  open() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = (event) => {
      if (typeof event.data === 'string') this.handlePacket(event.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      clearTimeout(this.pingTimer);
      const was = this.connected;
      this.connected = false;
      if (was && this.options.onDisconnect) this.options.onDisconnect();
      for (const [, ack] of this.acks) ack.reject(new Error('disconnected'));
      this.acks.clear();
      if (!this.active) return;
      const delay = Math.min(20000, 1000 * 2 ** this.retry++) * (0.75 + Math.random() * 0.5);
      setTimeout(() => { if (this.active && this.ws === ws) this.open(); }, delay);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  armPingTimeout() {
    clearTimeout(this.pingTimer);
    const limit = (this.pingInterval || 25000) + (this.pingTimeout || 20000);
    this.pingTimer = setTimeout(() => { if (this.ws) this.ws.close(); }, limit);
  }

  handlePacket(packet) {
    const type = packet[0];
    if (type === '0') { // Engine.IO open
      try {
        const open = JSON.parse(packet.slice(1));
        this.pingInterval = open.pingInterval;
        this.pingTimeout = open.pingTimeout;
      } catch { /* defaults */ }
      this.armPingTimeout();
      // Recovery (issue 22): the last notification seen, so the server replays what was missed.
      const auth = { ...(this.options.auth || {}) };
      const last = this.options.lastNotificationId && this.options.lastNotificationId();
      if (last) auth.lastNotificationId = last;
      this.ws.send('40' + JSON.stringify(auth));
    } else if (type === '2') { // ping → pong
      this.armPingTimeout();
      this.ws.send('3' + packet.slice(1));
    } else if (type === '1') {
      this.ws.close();
    } else if (type === '4') {
      this.handleSocketPacket(packet.slice(1));
    }
  }

  handleSocketPacket(packet) {
    const type = packet[0];
    let rest = packet.slice(1);
    if (rest.startsWith('/')) { // namespace (only the main one is used)
      const comma = rest.indexOf(',');
      rest = comma >= 0 ? rest.slice(comma + 1) : '';
    }
    const idMatch = /^\d+/.exec(rest);
    const ackId = idMatch ? parseInt(idMatch[0], 10) : null;
    if (idMatch) rest = rest.slice(idMatch[0].length);
    let data = null;
    if (rest) { try { data = JSON.parse(rest); } catch { data = null; } }
    switch (type) {
      case '0': // CONNECT
        this.connected = true;
        this.retry = 0;
        this.sid = data && data.sid;
        if (this.options.onConnect) this.options.onConnect(data);
        break;
      case '4': // CONNECT_ERROR: bad token — do not hammer the server with the same one
        this.active = false;
        if (this.options.onConnectError) this.options.onConnectError(data || {});
        this.ws.close();
        break;
      case '1': // namespace DISCONNECT by the server
        this.active = false;
        this.ws.close();
        break;
      case '2': // EVENT
        if (Array.isArray(data) && data.length) {
          const [event, ...args] = data;
          for (const handler of this.handlers.get(event) || []) {
            try { handler(...args); } catch (error) { console.error('socket.io handler failed', error); }
          }
          if (ackId !== null) this.ws.send('43' + ackId + '[]');
        }
        break;
      case '3': { // ACK
        const pending = this.acks.get(ackId);
        if (pending) { this.acks.delete(ackId); pending.resolve(Array.isArray(data) ? data[0] : data); }
        break;
      }
      default:
        break;
    }
  }

  /** Emits an event; resolves with the server's ack (or undefined after `timeout` ms). */
  emit(event, data, { ack = true, timeout = 5000 } = {}) {
    if (!this.connected) return Promise.reject(new Error('not connected'));
    const payload = data === undefined ? [event] : [event, data];
    if (!ack) {
      this.ws.send('42' + JSON.stringify(payload));
      return Promise.resolve();
    }
    const id = this.nextAck++;
    return new Promise((resolve, reject) => {
      this.acks.set(id, { resolve, reject });
      setTimeout(() => { if (this.acks.delete(id)) resolve(undefined); }, timeout);
      this.ws.send('42' + id + JSON.stringify(payload));
    });
  }
}
