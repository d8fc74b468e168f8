// Shared helpers for the LiveHub pages: REST calls, tokens, DOM building (text only), toasts.
// Every piece of user data reaches the DOM through textContent / attributes — never innerHTML.

export const API = '/v1/notifications/live';

/** Creates an element: el('div', {class: 'x', text: 'hello', onclick: fn, dataset: {...}}, ...children). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

export function show(node, visible = true) { node.classList.toggle('hidden', !visible); }

/** Error with the server's `{error, message}`. */
export class ApiError extends Error {
  constructor(status, code, message) { super(message || code || `HTTP ${status}`); this.status = status; this.code = code; }
}

/** fetch + JSON; throws ApiError with the server's message. */
export async function api(path, { method = 'GET', body, token } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  const text = await response.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = text; } }
  if (!response.ok) {
    throw new ApiError(response.status, data && data.error, (data && data.message) || `${response.status} ${response.statusText}`);
  }
  return data;
}

/** The claims of a JWT (not verified — only for display). */
export function jwtClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(Array.from(atob(part.padEnd(part.length + (4 - part.length % 4) % 4, '=')))
      .map((c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

export function identity(token) {
  const claims = token && jwtClaims(token);
  if (!claims) return null;
  const roles = Array.isArray(claims.roles) ? claims.roles : (claims.roles ? [claims.roles] : []);
  const expired = typeof claims.exp === 'number' && claims.exp * 1000 < Date.now();
  return { userId: claims.userId || claims.sub, username: claims.username || claims.sub, roles, expired };
}

export const tokens = {
  get(kind) { try { return localStorage.getItem(`livehub.${kind}Token`) || ''; } catch { return ''; } },
  set(kind, value) { try { if (value) localStorage.setItem(`livehub.${kind}Token`, value); else localStorage.removeItem(`livehub.${kind}Token`); } catch { /* private mode */ } },
};

/** Dev mode only: a token from the server (`POST /v1/dev/tokens`). */
export function devToken(role, username) {
  const body = { role };
  if (username) {
    body.username = username;
    body.userId = `dev-${username.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'user'}-${Math.floor(Math.random() * 9000 + 1000)}`;
  }
  return api('/v1/dev/tokens', { method: 'POST', body });
}

const money = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'USD', maximumFractionDigits: 2 });
export function formatMoney(value) { return money.format(Number(value) || 0); }
export function formatCount(value) { return new Intl.NumberFormat(undefined, { notation: (value >= 10000 ? 'compact' : 'standard') }).format(Number(value) || 0); }
export function formatDuration(seconds) {
  seconds = Math.max(0, Math.round(Number(seconds) || 0));
  const h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return (h ? `${h}:${String(m).padStart(2, '0')}` : `${m}`) + `:${String(s).padStart(2, '0')}`;
}
export function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** A short-lived message in the page's toast stack. */
export function toast(message, { kind = 'info', title, timeout = 5000, container } = {}) {
  let stack = container || $('#toasts');
  if (!stack) { stack = el('div', { id: 'toasts', class: 'toasts', 'aria-live': 'polite' }); document.body.append(stack); }
  const node = el('div', { class: `toast toast-${kind}`, role: 'status' },
    title ? el('strong', { class: 'toast-title', text: title }) : null,
    el('span', { class: 'toast-body', text: message }));
  stack.append(node);
  setTimeout(() => node.classList.add('leaving'), timeout);
  setTimeout(() => node.remove(), timeout + 400);
  return node;
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Fallback for pages without clipboard permission (http on a LAN address).
    const area = el('textarea', { class: 'offscreen', readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    area.remove();
    return ok;
  }
}

export function wsURL(path) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

export const STATUS_LABEL = { PENDING: 'Not started', WAITING_STREAM: 'Waiting for stream', LIVE: 'Live', ENDED: 'Ended' };

export function statusLabel(status, reconnecting) {
  if (status === 'LIVE' && reconnecting) return 'Reconnecting';
  return STATUS_LABEL[status] || status || '—';
}

export function statusClass(status, reconnecting) {
  if (status === 'LIVE' && reconnecting) return 'reconnecting';
  return (status || 'unknown').toLowerCase().replace('_', '-');
}
