// The viewer page (`/watch/{roomId}`): video (native HLS or our MSE player), status, viewers,
// chat over STOMP, products with the featured one highlighted, order toasts, and the bell.
// While live, "Rewind" switches the player to the DVR playlist (dvr.m3u8, seekable) and "Back to
// live" returns; an ended room with a recording links to its replay page (`/replay/{roomId}`).
import { API, $, el, show, api, identity, tokens, devToken, toast, wsURL, formatMoney, formatCount, formatDuration, statusLabel, statusClass } from './common.js';
import { StompClient } from './stomp.js';
import { mountReactions } from './reactions.js';
import { SocketIOClient } from './socketio.js';
import { createLivePlayer } from './mse-player.js';
import { renderChatLine, productThumb, renderFeaturedCard, showOrderToast } from './views.js';
import { attachDeals } from './deals.js';
import { handleChatDeleted } from './moderation.js';

const roomId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const params = new URLSearchParams(location.search);
const playerMode = params.get('player') || 'auto';

const state = {
  token: '',
  me: null,
  room: null,
  products: [],
  seenChat: new Set(),
  player: null,
  bell: null,
  stomp: null,
  notifications: [],
  dvr: false, // the player shows dvr.m3u8 (rewound) instead of the live playlist
};

// --- identity -------------------------------------------------------------------------------

function applyIdentity() {
  const me = state.me;
  show($('#who'), !!me);
  show($('#sign-in-open'), !me);
  show($('#chat-form'), !!me);
  show($('#chat-guest'), !me);
  show($('#bell'), !!me);
  if (me) {
    $('#who-name').textContent = me.username || me.userId;
    $('#who-avatar').textContent = (me.username || me.userId || '?').slice(0, 1).toUpperCase();
  }
}

function useToken(token) {
  const me = identity(token);
  if (!me) throw new Error('That does not look like a token (three dot-separated parts).');
  if (me.expired) throw new Error('That token has expired.');
  state.token = token;
  state.me = me;
  tokens.set('viewer', token);
  applyIdentity();
  if (state.stomp) state.stomp.setToken(token);
  connectBell();
}

function signOut() {
  tokens.set('viewer', '');
  state.token = '';
  state.me = null;
  if (state.bell) { state.bell.disconnect(); state.bell = null; }
  if (state.stomp) state.stomp.setToken('');
  applyIdentity();
}

const dialog = $('#signin-dialog');
function openSignIn() {
  $('#signin-error').textContent = '';
  if (typeof dialog.showModal === 'function') dialog.showModal(); else dialog.setAttribute('open', '');
}
$('#sign-in-open').addEventListener('click', openSignIn);
$('#sign-in-chat').addEventListener('click', openSignIn);
$('#signin-cancel').addEventListener('click', () => dialog.close());
$('#sign-out').addEventListener('click', signOut);

$('#signin-form').addEventListener('submit', (event) => {
  event.preventDefault();
  try {
    useToken($('#token-input').value.trim());
    dialog.close();
  } catch (error) {
    $('#signin-error').textContent = error.message;
  }
});

$('#dev-viewer').addEventListener('click', async () => {
  $('#signin-error').textContent = '';
  try {
    const name = $('#dev-name').value.trim();
    const { token } = await devToken('USER', name || undefined);
    useToken(token);
    dialog.close();
    toast(`Signed in as ${state.me.username}.`, { kind: 'success' });
  } catch (error) {
    $('#signin-error').textContent = error.status === 404 ? 'Dev tokens exist only in dev mode — paste a token instead.' : error.message;
  }
});

// --- room, status, player -------------------------------------------------------------------

async function loadRoom() {
  try {
    state.room = await api(`${API}/rooms/${encodeURIComponent(roomId)}`, { token: state.token || undefined });
  } catch (error) {
    $('#room-title').textContent = error.status === 404 ? 'This room does not exist' : 'The room cannot be loaded';
    setOverlay('!', error.status === 404 ? 'Room not found' : error.message);
    setBadge('ended', 'Unavailable');
    return false;
  }
  document.title = `${state.room.title} — LiveHub`;
  $('#room-title').textContent = state.room.title;
  $('#room-host').textContent = state.room.shopOwnerName ? `Hosted by ${state.room.shopOwnerName}` : '';
  $('#room-description').textContent = state.room.description || '';
  setViewers(state.room.viewerCount);
  renderStatus();
  return true;
}

function setOverlay(icon, message, sub = '') {
  $('#overlay-icon').textContent = icon;
  $('#overlay-message').textContent = message;
  $('#overlay-sub').textContent = sub;
  show($('#overlay'), !!message);
}

function setBadge(kind, text) {
  const badge = $('#status-badge');
  badge.dataset.status = kind;
  badge.textContent = text;
}

function setBanner(kind, text) {
  const banner = $('#status-banner');
  banner.dataset.kind = kind || '';
  banner.textContent = text || '';
  show(banner, !!text);
}

function renderStatus(message) {
  const room = state.room;
  if (!room) return;
  const kind = statusClass(room.status, room.reconnecting);
  const waiting = room.status === 'PENDING' || room.status === 'WAITING_STREAM';
  setBadge(kind, room.status === 'LIVE' && !room.reconnecting ? 'LIVE' : waiting ? 'Starting soon' : statusLabel(room.status, room.reconnecting));
  const playing = state.player && state.player.state === 'playing';
  const previous = state.shownStatus; // undefined on the first render
  state.shownStatus = kind;
  switch (room.status) {
    case 'PENDING':
    case 'WAITING_STREAM':
      setOverlay('◷', 'The show starts soon', 'Stay here — the video starts by itself.');
      setBanner('waiting', message || 'Waiting for the host to go live…');
      break;
    case 'LIVE':
      if (room.reconnecting) {
        setBanner('reconnecting', message || 'The host\u2019s stream dropped — reconnecting…');
        if (!playing) setOverlay('↻', 'Reconnecting…', 'The host\u2019s stream will be back in a moment.');
      } else {
        // A transition to live (not the first load of a live room) is announced for a few seconds.
        if (message && previous && previous !== 'live') {
          setBanner('live', message);
          clearTimeout(state.bannerTimer);
          state.bannerTimer = setTimeout(() => { if (state.shownStatus === 'live') setBanner('', ''); }, 5000);
        } else if (previous !== 'live') {
          setBanner('', '');
        }
        if (playing) show($('#overlay'), false); else setOverlay('●', 'Loading the live stream…');
      }
      if (!state.player) startPlayer();
      probeDvr();
      break;
    case 'ENDED': {
      const stats = room.stats || {};
      const parts = [];
      if (stats.duration !== undefined) parts.push(`${formatDuration(stats.duration)} long`);
      parts.push(plural(stats.peakViewers ?? room.peakViewers ?? 0, 'peak viewer'));
      parts.push(plural(stats.totalOrders ?? room.totalOrders ?? 0, 'order'));
      setBanner('ended', `This show has ended · ${parts.join(' · ')}`);
      setOverlay('■', 'This show has ended', `Thanks for watching · ${parts.join(' · ')}`);
      if (state.player) { state.player.stop(); state.player = null; }
      leaveDvr();
      show($('#dvr-bar'), false);
      show($('#unmute'), false);
      show($('#featured-spot'), false);
      offerReplay();
      break;
    }
    default:
      break;
  }
}

function plural(count, word) {
  return `${formatCount(count)} ${word}${Number(count) === 1 ? '' : 's'}`;
}

function startPlayer() {
  const video = $('#video');
  const hls = `/hls/${encodeURIComponent(roomId)}`;
  const player = createLivePlayer(video, state.dvr ? `${hls}/dvr.m3u8` : `${hls}/index.m3u8`, {
    mode: playerMode,
    startAt: state.dvr ? -30 : 0,
    onState: (s) => {
      player.state = s;
      if (s === 'error' && state.player === player) {
        setTimeout(() => {
          if (state.player !== player) return;
          player.stop();
          state.player = null;
          if (state.room && state.room.status === 'LIVE') startPlayer();
        }, 3000);
      }
    },
  });
  state.player = player;
  video.dataset.player = player.kind;
  video.dataset.mode = state.dvr ? 'dvr' : 'live';
  player.start();
}

// --- DVR (rewind during the live) and the replay link after it -------------------------------

/** Shows the Rewind bar once the room's DVR playlist exists (recording on); retried while live. */
async function probeDvr() {
  if (state.dvrProbing || !$('#dvr-bar').classList.contains('hidden')) return;
  state.dvrProbing = true;
  try {
    for (let attempt = 0; attempt < 60 && state.room && state.room.status === 'LIVE'; attempt++) {
      try {
        const response = await fetch(`/hls/${encodeURIComponent(roomId)}/dvr.m3u8`, { cache: 'no-store' });
        if (response.ok) { show($('#dvr-bar'), state.room.status === 'LIVE'); return; }
        if (response.status === 404 && attempt >= 10) return; // no recording for this live
      } catch { /* retry */ }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  } finally {
    state.dvrProbing = false;
  }
}

function switchPlayer(dvr) {
  state.dvr = dvr;
  if (state.player) { state.player.stop(); state.player = null; }
  const video = $('#video');
  video.controls = dvr; // the seek bar, to move through the show
  show($('#dvr-rewind'), !dvr);
  show($('#dvr-live'), dvr);
  show($('#dvr-note'), dvr);
  if (state.room && state.room.status === 'LIVE') startPlayer();
}

function leaveDvr() {
  if (!state.dvr) return;
  state.dvr = false;
  $('#video').controls = false;
  show($('#dvr-rewind'), true);
  show($('#dvr-live'), false);
  show($('#dvr-note'), false);
}

$('#dvr-rewind').addEventListener('click', () => switchPlayer(true));
$('#dvr-live').addEventListener('click', () => switchPlayer(false));

/** An ended room: link to the replay once the room reports a `replayUrl` (the recording is sealed a moment after the end). */
async function offerReplay() {
  if (state.replayOffered) return;
  state.replayOffered = true;
  for (let attempt = 0; attempt < 8; attempt++) {
    if (state.room && state.room.replayUrl) {
      const link = $('#replay-link');
      link.href = `/replay/${encodeURIComponent(roomId)}`;
      show(link, true);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, attempt === 0 ? 300 : 1500));
    try {
      const room = await api(`${API}/rooms/${encodeURIComponent(roomId)}`);
      if (state.room && room) state.room.replayUrl = room.replayUrl;
    } catch { /* try again */ }
  }
}

const video = $('#video');
video.addEventListener('playing', () => {
  if (state.player) state.player.state = 'playing';
  if (state.room && state.room.status === 'LIVE') show($('#overlay'), false);
  show($('#unmute'), video.muted);
});
$('#unmute').addEventListener('click', () => { video.muted = false; video.play().catch(() => {}); show($('#unmute'), false); });

function setViewers(count) {
  const node = $('#viewer-count');
  node.dataset.count = String(count || 0);
  node.textContent = formatCount(count || 0);
}

// --- products -------------------------------------------------------------------------------

function renderProducts() {
  const list = $('#products');
  list.replaceChildren(...state.products.map((p) => {
    const name = p.productName || `Product ${p.productId}`;
    const soldOut = typeof p.stockAvailable === 'number' && p.stockAvailable <= 0;
    return el('li', { class: `product-card${p.isFeatured ? ' featured' : ''}${soldOut ? ' sold-out' : ''}`, dataset: { productId: p.productId, liveProductId: p.id } },
      el('div', { class: 'product-media' },
        productThumb(p, name),
        p.discountPercent >= 0.5 ? el('span', { class: 'tag-discount', text: `-${Math.round(p.discountPercent)}%` }) : null),
      el('div', { class: 'product-body' },
        p.isFeatured ? el('span', { class: 'tag-featured', text: '★ Now showing' }) : null,
        el('span', { class: 'product-name', text: name, title: name }),
        el('span', { class: 'product-price' },
          el('b', { class: 'live-price', text: formatMoney(p.livePrice) }),
          p.originalPrice && p.originalPrice > p.livePrice ? el('s', { class: 'original-price', text: formatMoney(p.originalPrice) }) : null),
        el('span', { class: 'product-meta muted' },
          `${formatCount(p.soldCount || 0)} sold`,
          typeof p.stockAvailable === 'number' ? ` · ${soldOut ? 'sold out' : `${formatCount(p.stockAvailable)} left`}` : '',
          p.quantityLimit ? ` · max ${p.quantityLimit}/order` : '')));
  }));
  $('#product-count').textContent = state.products.length ? `(${state.products.length})` : '';
  show($('#no-products'), state.products.length === 0);
  const featured = state.products.find((p) => p.isFeatured);
  renderFeaturedSpot(state.room && state.room.status === 'ENDED' ? null : featured);
  const featuredCard = list.querySelector('.featured');
  if (featured && featuredCard && state.lastFeatured !== featured.id) {
    state.lastFeatured = featured.id;
    featuredCard.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }
}

/** The featured product, pinned over the video. */
function renderFeaturedSpot(p) {
  renderFeaturedCard($('#featured-spot'), p, { roomId });
  if (state.deals) state.deals.refresh();
}

// --- chat -----------------------------------------------------------------------------------

function addChat(chat, { live = false } = {}) {
  if (!chat || !chat.id || state.seenChat.has(chat.id)) return;
  state.seenChat.add(chat.id);
  const list = $('#chat');
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  list.append(renderChatLine(chat, { me: state.me }));
  while (list.children.length > 300) list.firstElementChild.remove();
  if (stick || !live) list.scrollTop = list.scrollHeight;
  if (live && chat.type === 'ORDER') orderToast(chat);
}

function orderToast(chat) {
  showOrderToast($('#order-toasts'), chat.message);
}

function systemLine(text) {
  addChat({ id: `local-${Date.now()}-${Math.random()}`, type: 'SYSTEM', message: text }, { live: true });
}

$('#chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $('#chat-input');
  const message = input.value.trim();
  if (!message) return;
  if (state.stomp && state.stomp.publish(`/app/live/${roomId}/chat`, { message })) {
    input.value = '';
  } else {
    toast('Not connected to the chat yet — try again in a moment.', { kind: 'error' });
  }
});

// --- hub ------------------------------------------------------------------------------------

function setConn(kind) {
  const node = $('#conn-state');
  node.dataset.state = kind;
  node.textContent = kind === 'live' ? 'connected' : kind;
}

function connectHub() {
  const stomp = new StompClient(wsURL('/ws/live'), {
    token: state.token,
    onConnect: () => {
      setConn('live');
      stomp.publish(`/app/live/${roomId}/join`, {});
    },
    onDisconnect: () => setConn('reconnecting'),
    onError: (message, frame, wasConnected) => {
      if (!wasConnected && state.token) { // the hub refused our token: continue as a guest
        toast(message || 'The chat refused your sign-in.', { kind: 'error', title: 'Signed out' });
        signOut();
      } else if (message) {
        systemLine(`Chat: ${message}`);
      }
    },
  });
  state.stomp = stomp;
  const base = `/topic/live/${roomId}`;
  // Recovery (issue 22): after a reconnect the hub replays what each topic missed; when it cannot
  // (recovered:false), the page reloads the room, products and chat by REST.
  const recovery = { onRecovery: (recovered) => { if (!recovered) resyncRoom(); } };
  stomp.subscribe(`${base}/status`, (message) => {
    if (!state.room) return;
    Object.assign(state.room, { status: message.status, reconnecting: !!message.reconnecting, startedAt: message.startedAt, endedAt: message.endedAt });
    if (message.stats) state.room.stats = message.stats;
    renderStatus(message.message);
  }, recovery);
  stomp.subscribe(`${base}/viewers`, (message) => setViewers(message.count), recovery);
  stomp.subscribe(`${base}/product`, (products) => {
    if (!Array.isArray(products)) return;
    state.products = products;
    renderProducts();
  }, recovery);
  stomp.subscribe(`${base}/chat`, (chat) => {
    if (handleChatDeleted(chat, $('#chat'), state.seenChat)) return; // issue 22: a moderator's delete
    addChat(chat, { live: true });
  }, recovery);
  state.deals = attachDeals({ stomp, roomId, token: () => state.token });
  mountReactions({ stomp, roomId, frame: $('#video-frame') });
  stomp.subscribe('/user/queue/errors', (error) => {
    const text = (error && error.message) || String(error);
    toast(text, { kind: 'error', title: 'Not sent' });
  });
  stomp.activate();
  addEventListener('pagehide', () => { stomp.publish(`/app/live/${roomId}/leave`, {}); });
}

/** The state the hub could not replay, from REST (a `recovered:false` marker). */
async function resyncRoom() {
  await loadRoom();
  const [products, chats] = await Promise.allSettled([
    api(`${API}/rooms/${encodeURIComponent(roomId)}/products`),
    api(`${API}/rooms/${encodeURIComponent(roomId)}/chats?limit=50`),
  ]);
  if (products.status === 'fulfilled' && Array.isArray(products.value)) { state.products = products.value; renderProducts(); }
  if (chats.status === 'fulfilled') {
    const items = Array.isArray(chats.value) ? chats.value : (chats.value && chats.value.items) || [];
    for (const chat of items) addChat(chat);
  }
}

// --- bell -----------------------------------------------------------------------------------

function setUnread(count) {
  const badge = $('#bell-badge');
  count = Math.max(0, Number(count) || 0);
  badge.dataset.count = String(count);
  badge.textContent = count > 99 ? '99+' : String(count);
  show(badge, count > 0);
  $('#bell-button').setAttribute('aria-label', count ? `Notifications (${count} unread)` : 'Notifications');
}

function connectBell() {
  if (state.bell) state.bell.disconnect();
  if (!state.token) return;
  const bell = new SocketIOClient(wsURL(''), {
    auth: { token: state.token },
    // Recovery (issue 22): the server replays the notifications newer than this one.
    lastNotificationId: () => state.lastNotificationId || null,
    onConnect: async () => {
      try { setUnread((await api('/v1/notifications/unread-count', { token: state.token })).count); } catch { /* keep */ }
    },
    onConnectError: (error) => toast(error.message || 'The notification service refused the token.', { kind: 'error', title: 'Notifications' }),
  });
  bell.on('notification:new', (n) => {
    if (n.unreadCount !== undefined) setUnread(n.unreadCount);
    if (state.notifications.some((known) => known.id === n.notificationId)) return; // replayed and live
    state.lastNotificationId = n.notificationId;
    toast(n.body || '', { title: n.title || 'Notification', kind: 'info' });
    state.notifications.unshift({ id: n.notificationId, type: n.type, title: n.title, body: n.body, createdAt: n.createdAt, readAt: null });
    if (!$('#bell-panel').classList.contains('hidden')) renderNotifications();
  });
  bell.on('unreadCount:updated', (m) => setUnread(m.count));
  bell.on('notification:resync', async (m) => { // too many missed: reload by REST
    if (m && m.unreadCount !== undefined) setUnread(m.unreadCount);
    try {
      const page = await api('/v1/notifications?limit=20', { token: state.token });
      state.notifications = (page && page.items) || (Array.isArray(page) ? page : []);
      state.lastNotificationId = state.notifications.length ? state.notifications[0].id : null;
      renderNotifications();
    } catch { /* keep */ }
  });
  bell.on('notification:updated', (m) => {
    if (m.unreadCount !== undefined) setUnread(m.unreadCount);
    const now = new Date().toISOString();
    for (const n of state.notifications) {
      if (m.action === 'read-all' || n.id === m.notificationId) n.readAt = n.readAt || now;
    }
    renderNotifications();
  });
  state.bell = bell;
  bell.connect();
}

function renderNotifications() {
  const list = $('#bell-list');
  list.replaceChildren(...state.notifications.map((n) => el('li', { class: `bell-item${n.readAt ? '' : ' unread'}`, dataset: { id: n.id } },
    el('button', { type: 'button', onclick: () => markRead(n) },
      el('span', { class: 'bell-title', text: n.title || n.type }),
      n.body ? el('span', { class: 'bell-body', text: n.body }) : null,
      el('span', { class: 'bell-time', text: new Date(n.createdAt).toLocaleString() })))));
  show($('#bell-empty'), state.notifications.length === 0);
}

async function markRead(n) {
  if (n.readAt || !state.bell) return;
  n.readAt = new Date().toISOString();
  renderNotifications();
  try {
    const ack = await state.bell.emit('notification:read', { notificationId: n.id });
    if (ack && ack.unreadCount !== undefined) setUnread(ack.unreadCount);
  } catch {
    await api(`/v1/notifications/${encodeURIComponent(n.id)}/read`, { method: 'POST', token: state.token }).catch(() => {});
  }
}

$('#bell-button').addEventListener('click', async (event) => {
  event.stopPropagation();
  const panel = $('#bell-panel');
  const open = panel.classList.contains('hidden');
  show(panel, open);
  $('#bell-button').setAttribute('aria-expanded', String(open));
  if (!open) return;
  renderNotifications();
  try {
    const page = await api('/v1/notifications?limit=20', { token: state.token });
    state.notifications = (page && page.items) || (Array.isArray(page) ? page : []);
    if (state.notifications.length) state.lastNotificationId = state.notifications[0].id;
    renderNotifications();
  } catch (error) {
    toast(error.message, { kind: 'error' });
  }
});
$('#bell-panel').addEventListener('click', (event) => event.stopPropagation());
document.addEventListener('click', () => { show($('#bell-panel'), false); $('#bell-button').setAttribute('aria-expanded', 'false'); });

$('#read-all').addEventListener('click', async () => {
  try {
    if (state.bell && state.bell.connected) await state.bell.emit('notification:read-all');
    else await api('/v1/notifications/read-all', { method: 'POST', token: state.token });
    for (const n of state.notifications) n.readAt = n.readAt || new Date().toISOString();
    renderNotifications();
    setUnread(0);
  } catch (error) {
    toast(error.message, { kind: 'error' });
  }
});

// --- start ----------------------------------------------------------------------------------

async function main() {
  const saved = tokens.get('viewer');
  const me = saved && identity(saved);
  if (me && !me.expired) { state.token = saved; state.me = me; }
  applyIdentity();
  if (!roomId) { $('#room-title').textContent = 'No room given'; return; }
  if (!(await loadRoom())) return;
  connectHub();
  if (state.token) connectBell();
  const [products, chats] = await Promise.allSettled([
    api(`${API}/rooms/${encodeURIComponent(roomId)}/products`),
    api(`${API}/rooms/${encodeURIComponent(roomId)}/chats?limit=50`),
  ]);
  if (products.status === 'fulfilled' && Array.isArray(products.value) && !state.products.length) { state.products = products.value; }
  renderProducts();
  if (chats.status === 'fulfilled') {
    const items = Array.isArray(chats.value) ? chats.value : (chats.value && chats.value.items) || [];
    for (const chat of items) addChat(chat);
  }
}

main();
