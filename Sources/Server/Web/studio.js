// The studio (`/`): sign in as a shop owner, create rooms, show the RTMP URL and stream key,
// start/end, rotate the key, manage products, and follow the live figures over the hub.
import { API, $, el, show, api, identity, tokens, devToken, toast, copyText, wsURL, formatMoney, formatCount, formatDuration, statusLabel, statusClass } from './common.js';
import { StompClient } from './stomp.js';
import { createLivePlayer } from './mse-player.js';
import { renderChatLine, productThumb } from './views.js';
import { attachStudioDeals } from './deals.js';
import { handleChatDeleted, chatLineActions, mountModerationPanel } from './moderation.js';

const params = new URLSearchParams(location.search);
const playerMode = params.get('player') || 'auto';

const state = {
  token: '',
  me: null,
  rooms: [],
  room: null,
  products: [],
  stomp: null,
  unsubscribe: [],
  player: null,
  statsTimer: null,
  seenChat: new Set(),
};

// --- sign in ---------------------------------------------------------------------------------

function signIn(token, { quiet = false } = {}) {
  const me = identity(token);
  if (!me) { if (!quiet) $('#signin-error').textContent = 'That does not look like a token (three dot-separated parts).'; return false; }
  if (me.expired) { if (!quiet) $('#signin-error').textContent = 'That token has expired.'; return false; }
  if (!me.roles.includes('SHOP_OWNER') && !quiet) toast('This token has no SHOP_OWNER role — creating rooms will be refused.', { kind: 'warn' });
  state.token = token;
  state.me = me;
  tokens.set('owner', token);
  $('#who-name').textContent = me.username || me.userId;
  $('#who-avatar').textContent = (me.username || me.userId || '?').slice(0, 1).toUpperCase();
  show($('#who'), true);
  show($('#signin'), false);
  show($('#workspace'), true);
  connectHub();
  loadRooms(true);
  return true;
}

function signOut() {
  tokens.set('owner', '');
  location.hash = '';
  location.reload();
}

$('#token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  $('#signin-error').textContent = '';
  signIn($('#token-input').value.trim());
});

$('#dev-owner').addEventListener('click', async () => {
  $('#signin-error').textContent = '';
  try {
    const { token } = await devToken('SHOP_OWNER');
    signIn(token);
  } catch (error) {
    $('#signin-error').textContent = error.status === 404 ? 'Dev tokens exist only in dev mode — paste a token instead.' : error.message;
  }
});

$('#sign-out').addEventListener('click', signOut);

// --- hub ----------------------------------------------------------------------------------------

// The owner's own preview does not join the room: it would count as a viewer.
function connectHub() {
  state.stomp = new StompClient(wsURL('/ws/live'), {
    token: state.token,
    onError: (message, frame, wasConnected) => {
      toast(message || 'The live hub refused the connection.', { kind: 'error', title: 'Live hub' });
      if (!wasConnected) state.stomp.deactivate(); // a refused token: no retry loop
    },
  });
  state.stomp.subscribe('/user/queue/errors', (error) => toast(error.message || String(error), { kind: 'error', title: 'Refused' }));
  state.stomp.activate();
}

function watchRoom(roomId) {
  for (const off of state.unsubscribe) off();
  state.unsubscribe = [];
  const stomp = state.stomp;
  const base = `/topic/live/${roomId}`;
  // Recovery (issue 22): a gap the hub could not fill after a reconnect → reload the room by REST.
  const recovery = { onRecovery: (recovered) => { if (!recovered && state.room && state.room.id === roomId) selectRoom(roomId); } };
  state.unsubscribe.push(
    stomp.subscribe(`${base}/status`, (message) => {
      if (!state.room || state.room.id !== roomId) return;
      Object.assign(state.room, { status: message.status, reconnecting: !!message.reconnecting, startedAt: message.startedAt, endedAt: message.endedAt });
      if (message.stats) applyStats(message.stats);
      renderStatus();
      if (message.message) toast(message.message, { title: statusLabel(message.status, message.reconnecting) });
      updateRoomInList(state.room);
    }, recovery),
    stomp.subscribe(`${base}/viewers`, (message) => {
      if (!state.room || state.room.id !== roomId) return;
      state.room.viewerCount = message.count;
      state.room.peakViewers = Math.max(state.room.peakViewers || 0, message.peak || 0);
      renderFigures();
    }, recovery),
    stomp.subscribe(`${base}/product`, (products) => {
      if (!state.room || state.room.id !== roomId || !Array.isArray(products)) return;
      state.products = products;
      renderProducts();
    }, recovery),
    stomp.subscribe(`${base}/chat`, (chat) => {
      if (!state.room || state.room.id !== roomId) return;
      if (handleChatDeleted(chat, $('#studio-chat'), state.seenChat)) { state.moderation?.refresh(); return; }
      addChat(chat);
      if (chat.type === 'ORDER') {
        refreshStats();
        toast(chat.message, { kind: 'order', title: 'New order' });
      }
    }, recovery),
  );
}

// --- rooms ----------------------------------------------------------------------------------

async function loadRooms(selectInitial = false) {
  try {
    const data = await api(`${API}/rooms/mine`, { token: state.token });
    state.rooms = (Array.isArray(data) ? data : (data && data.items) || []).slice()
      .sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
  } catch (error) {
    if (error.status === 401) { tokens.set('owner', ''); toast('Your token was refused — sign in again.', { kind: 'error' }); setTimeout(() => location.reload(), 1500); return; }
    toast(error.message, { kind: 'error', title: 'Could not load your rooms' });
    return;
  }
  renderRoomList();
  if (selectInitial) {
    const wanted = new URLSearchParams(location.hash.slice(1)).get('room');
    const initial = state.rooms.find((r) => r.id === wanted) || state.rooms.find((r) => r.status !== 'ENDED');
    if (initial) selectRoom(initial.id);
  }
}

function renderRoomList() {
  const list = $('#my-rooms');
  list.replaceChildren(...state.rooms.map((room) => el('li', { dataset: { roomId: room.id } },
    el('button', { type: 'button', class: `room-item${state.room && state.room.id === room.id ? ' selected' : ''}`, onclick: () => selectRoom(room.id) },
      el('span', { class: 'room-item-title', text: room.title }),
      el('span', { class: `pill pill-sm ${statusClass(room.status, room.reconnecting)}`, text: statusLabel(room.status, room.reconnecting) })))));
  show($('#no-rooms'), state.rooms.length === 0);
}

function updateRoomInList(room) {
  const index = state.rooms.findIndex((r) => r.id === room.id);
  if (index >= 0) state.rooms[index] = { ...state.rooms[index], ...room };
  renderRoomList();
}

$('#refresh-rooms').addEventListener('click', () => loadRooms());

$('#create-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('#create-error').textContent = '';
  const body = { title: $('#room-title').value.trim() };
  const description = $('#room-description').value.trim();
  const thumbnailUrl = $('#room-thumbnail').value.trim();
  if (description) body.description = description;
  if (thumbnailUrl) body.thumbnailUrl = thumbnailUrl;
  if (!body.title) { $('#create-error').textContent = 'Give the room a title.'; return; }
  const button = $('#create-room');
  button.disabled = true;
  try {
    const room = await api(`${API}/rooms`, { method: 'POST', body, token: state.token });
    $('#create-form').reset();
    state.rooms.unshift(room);
    renderRoomList();
    await selectRoom(room.id, room);
    toast('Point OBS at the server URL and stream key below.', { title: 'Room created', kind: 'success' });
  } catch (error) {
    $('#create-error').textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

async function selectRoom(roomId, known) {
  let room = known;
  try {
    if (!room) room = await api(`${API}/rooms/${encodeURIComponent(roomId)}`, { token: state.token });
  } catch (error) {
    toast(error.message, { kind: 'error' });
    return;
  }
  if (state.player) { state.player.stop(); state.player = null; }
  state.room = room;
  state.products = [];
  state.seenChat = new Set();
  history.replaceState(null, '', `#room=${encodeURIComponent(room.id)}`);
  show($('#no-room-selected'), false);
  show($('#room-detail'), true);
  $('#room-title-view').textContent = room.title;
  const watch = `/watch/${encodeURIComponent(room.id)}`;
  $('#watch-link').href = watch;
  setKeyVisible(false);
  renderKeys();
  renderStatus();
  renderFigures();
  renderRoomList();
  $('#studio-chat').replaceChildren();
  renderProducts();
  state.moderation = mountModerationPanel($('#studio-moderation'), { roomId: room.id, token: state.token });
  watchRoom(room.id);
  clearInterval(state.statsTimer);
  state.statsTimer = setInterval(refreshStats, 10000);
  const [products, chats] = await Promise.allSettled([
    api(`${API}/rooms/${encodeURIComponent(room.id)}/products`),
    api(`${API}/rooms/${encodeURIComponent(room.id)}/chats?limit=50`),
  ]);
  if (state.room !== room) return;
  if (products.status === 'fulfilled' && Array.isArray(products.value)) { state.products = products.value; renderProducts(); }
  if (chats.status === 'fulfilled') {
    const items = Array.isArray(chats.value) ? chats.value : (chats.value && chats.value.items) || [];
    for (const chat of items) addChat(chat);
  }
  refreshStats();
}

function renderKeys() {
  const room = state.room;
  const url = room.rtmpUrl || '';
  $('#rtmp-url').value = url;
  $('#stream-key').value = room.streamKey || '';
  $('#ffmpeg-line').textContent = `ffmpeg -re -i input.mp4 -c copy -f flv ${url || 'rtmp://HOST:1935/live'}/<stream key>`;
}

function setKeyVisible(visible) {
  $('#stream-key').type = visible ? 'text' : 'password';
  $('#toggle-key').textContent = visible ? 'Hide' : 'Show';
  $('#toggle-key').setAttribute('aria-pressed', String(visible));
}

$('#toggle-key').addEventListener('click', () => setKeyVisible($('#stream-key').type === 'password'));
$('#copy-key').addEventListener('click', async () => toast(await copyText($('#stream-key').value) ? 'Stream key copied.' : 'Copy failed — select the key and copy it.', { kind: 'success' }));
$('#copy-url').addEventListener('click', async () => toast(await copyText($('#rtmp-url').value) ? 'Server URL copied.' : 'Copy failed.', { kind: 'success' }));

$('#rotate-key').addEventListener('click', async () => {
  if (!state.room) return;
  try {
    const result = await api(`${API}/rooms/${encodeURIComponent(state.room.id)}/stream-key`, { method: 'POST', token: state.token });
    if (result && result.streamKey) state.room.streamKey = result.streamKey;
    if (result && result.rtmpUrl) state.room.rtmpUrl = result.rtmpUrl;
    renderKeys();
    toast('The old key no longer works. Update OBS with the new one.', { title: 'Stream key rotated', kind: 'success' });
  } catch (error) {
    toast(error.message, { kind: 'error', title: 'Cannot rotate the key' });
  }
});

$('#start-room').addEventListener('click', async () => {
  if (!state.room) return;
  try {
    const room = await api(`${API}/rooms/${encodeURIComponent(state.room.id)}/start`, { method: 'PUT', token: state.token });
    if (room && room.status) Object.assign(state.room, { status: room.status, reconnecting: !!room.reconnecting });
    renderStatus();
    updateRoomInList(state.room);
  } catch (error) {
    toast(error.message, { kind: 'error', title: 'Cannot start' });
  }
});

let endArmed = null;
$('#end-room').addEventListener('click', async () => {
  if (!state.room) return;
  const button = $('#end-room');
  if (!endArmed) { // two clicks, no blocking confirm()
    button.textContent = 'Click again to end';
    endArmed = setTimeout(() => { endArmed = null; button.textContent = 'End live'; }, 4000);
    return;
  }
  clearTimeout(endArmed);
  endArmed = null;
  button.textContent = 'End live';
  try {
    const stats = await api(`${API}/rooms/${encodeURIComponent(state.room.id)}/end`, { method: 'PUT', token: state.token });
    state.room.status = 'ENDED';
    state.room.reconnecting = false;
    if (stats) applyStats(stats);
    renderStatus();
    updateRoomInList(state.room);
    toast(`${formatCount(state.room.peakViewers)} peak viewers · ${formatCount(state.room.totalOrders)} orders · ${formatMoney(state.room.totalRevenue)}`, { title: 'Show ended', kind: 'success', timeout: 8000 });
  } catch (error) {
    toast(error.message, { kind: 'error', title: 'Cannot end' });
  }
});

// --- figures --------------------------------------------------------------------------------

function applyStats(stats) {
  if (!state.room) return;
  for (const key of ['viewerCount', 'peakViewers', 'totalOrders', 'totalRevenue', 'duration']) {
    if (stats[key] !== undefined) state.room[key] = stats[key];
  }
  // `PUT …/end` answers the old service's `duration: "2h 30m"`; the seconds are `durationSeconds`.
  if (typeof stats.durationSeconds === 'number') state.room.duration = stats.durationSeconds;
  if (stats.status) state.room.status = stats.status;
  renderFigures();
}

async function refreshStats() {
  const room = state.room;
  if (!room) return;
  try {
    const stats = await api(`${API}/rooms/${encodeURIComponent(room.id)}/stats`);
    if (state.room === room) { applyStats(stats); renderStatus(); }
  } catch { /* next time */ }
}

function renderStatus() {
  const room = state.room;
  const label = statusLabel(room.status, room.reconnecting);
  const pill = $('#room-status');
  pill.textContent = label;
  pill.className = `pill ${statusClass(room.status, room.reconnecting)}`;
  $('#stat-status').textContent = label;
  $('#stat-status').dataset.status = statusClass(room.status, room.reconnecting);
  $('#start-room').disabled = room.status !== 'PENDING';
  $('#end-room').disabled = room.status === 'ENDED';
  $('#rotate-key').disabled = room.status === 'LIVE' || room.status === 'ENDED';
  show($('#preview-live'), room.status === 'LIVE' && !room.reconnecting);
  const overlay = $('#preview-overlay');
  let message = '';
  if (room.status === 'PENDING' || room.status === 'WAITING_STREAM') message = 'Waiting for your encoder — start streaming in OBS';
  else if (room.status === 'LIVE' && room.reconnecting) message = 'Encoder disconnected — reconnecting…';
  else if (room.status === 'ENDED') message = `Show ended · ${formatDuration(room.duration)}`;
  $('#preview-message').textContent = message;
  overlay.dataset.status = statusClass(room.status, room.reconnecting);
  const playing = state.player && state.player.state === 'playing';
  show(overlay, !!message && !(room.status === 'LIVE' && playing));
  if (room.status === 'LIVE' && !state.player) startPreview();
}

function renderFigures() {
  const room = state.room;
  $('#stat-viewers').textContent = formatCount(room.viewerCount);
  $('#stat-peak').textContent = formatCount(room.peakViewers);
  $('#stat-orders').textContent = formatCount(room.totalOrders);
  $('#stat-revenue').textContent = formatMoney(room.totalRevenue);
  $('#preview-viewers').textContent = formatCount(room.viewerCount);
}

function startPreview() {
  const room = state.room;
  const video = $('#preview');
  const player = createLivePlayer(video, `/hls/${encodeURIComponent(room.id)}/index.m3u8`, {
    mode: playerMode,
    onState: (s) => {
      player.state = s;
      if (s === 'error') setTimeout(() => { if (state.player === player) { player.stop(); state.player = null; if (state.room.status === 'LIVE') startPreview(); } }, 3000);
      renderStatus();
    },
  });
  state.player = player;
  video.dataset.player = player.kind;
  player.start();
}

$('#preview').addEventListener('playing', () => { if (state.player) { state.player.state = 'playing'; renderStatus(); } });

// --- products -------------------------------------------------------------------------------

function renderProducts() {
  const list = $('#studio-products');
  list.replaceChildren(...state.products.map((p) => {
    const name = p.productName || `Product ${p.productId}`;
    return el('li', { class: `studio-product${p.isFeatured ? ' featured' : ''}`, dataset: { productId: p.productId, liveProductId: p.id } },
      productThumb(p, name),
      el('div', { class: 'sp-text' },
        el('span', { class: 'sp-name', text: name }),
        el('span', { class: 'sp-meta' },
          el('b', { text: formatMoney(p.livePrice) }),
          p.originalPrice ? el('s', { text: formatMoney(p.originalPrice) }) : null,
          p.discountPercent >= 0.5 ? el('span', { class: 'discount', text: `-${Math.round(p.discountPercent)}%` }) : null,
          el('span', { class: 'muted', text: `· ${p.soldCount || 0} sold` }))),
      el('div', { class: 'sp-actions' },
        el('button', { type: 'button', class: `btn btn-sm feature-btn${p.isFeatured ? ' btn-accent' : ''}`, disabled: p.isFeatured, text: p.isFeatured ? '★ Featured' : 'Feature', onclick: () => featureProduct(p) }),
        el('button', { type: 'button', class: 'btn btn-sm btn-ghost remove-btn', text: 'Remove', 'aria-label': `Remove ${name}`, onclick: () => removeProduct(p) })));
  }));
  show($('#no-products'), state.products.length === 0);
  studioDeals.refresh();
}

const studioDeals = attachStudioDeals({ container: $('#studio-deals'), room: () => state.room, products: () => state.products, token: () => state.token });

$('#product-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!state.room) return;
  $('#product-error').textContent = '';
  const number = (id) => { const v = $(id).value.trim(); return v === '' ? undefined : Number(v); };
  const body = { productId: $('#p-id').value.trim(), livePrice: number('#p-price') };
  const name = $('#p-name').value.trim();
  const image = $('#p-image').value.trim();
  if (name) body.productName = name;
  if (image) body.productImageUrl = image;
  if (number('#p-original') !== undefined) body.originalPrice = number('#p-original');
  if (number('#p-stock') !== undefined) body.stockAvailable = number('#p-stock');
  try {
    await api(`${API}/rooms/${encodeURIComponent(state.room.id)}/products`, { method: 'POST', body, token: state.token });
    $('#product-form').reset();
    $('#p-id').focus();
    const products = await api(`${API}/rooms/${encodeURIComponent(state.room.id)}/products`);
    if (Array.isArray(products)) { state.products = products; renderProducts(); }
  } catch (error) {
    $('#product-error').textContent = error.message;
  }
});

async function featureProduct(p) {
  try {
    await api(`${API}/rooms/${encodeURIComponent(state.room.id)}/products/${encodeURIComponent(p.id)}/feature`, { method: 'PUT', token: state.token });
    state.products = state.products.map((x) => ({ ...x, isFeatured: x.id === p.id }));
    renderProducts();
  } catch (error) {
    toast(error.message, { kind: 'error' });
  }
}

async function removeProduct(p) {
  try {
    await api(`${API}/rooms/${encodeURIComponent(state.room.id)}/products/${encodeURIComponent(p.id)}`, { method: 'DELETE', token: state.token });
    state.products = state.products.filter((x) => x.id !== p.id);
    renderProducts();
  } catch (error) {
    toast(error.message, { kind: 'error' });
  }
}

// --- chat -----------------------------------------------------------------------------------

function addChat(chat) {
  if (!chat || !chat.id || state.seenChat.has(chat.id)) return;
  state.seenChat.add(chat.id);
  const list = $('#studio-chat');
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const line = renderChatLine(chat, { me: state.me });
  const actions = chatLineActions(chat, { roomId: state.room.id, token: state.token, me: state.me, onChange: () => state.moderation?.refresh() });
  if (actions) line.append(actions);
  list.append(line);
  while (list.children.length > 200) list.firstElementChild.remove();
  if (stick) list.scrollTop = list.scrollHeight;
}

$('#studio-chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $('#studio-chat-input');
  const message = input.value.trim();
  if (!message || !state.room) return;
  if (state.stomp.publish(`/app/live/${state.room.id}/chat`, { message })) input.value = '';
  else toast('Not connected to the live hub yet.', { kind: 'error' });
});

// --- start ----------------------------------------------------------------------------------

const saved = tokens.get('owner');
if (!(saved && signIn(saved, { quiet: true }))) show($('#signin'), true);
