// The replay page (`/replay/{roomId}`, issue 21 "Replay page"): the recorded show (`vod.m3u8`, native
// HLS or LiveHub's seekable MSE player) with its chat, featured product, order toasts and chapters in
// sync. Everything comes from the room's timeline (`GET …/rooms/{id}/timeline`), whose `t` is the
// event's position in the VOD, so the page at a moment t shows: the chat lines with `t' ≤ t`, the
// last product featured and not unfeatured by t, the pinned line, and the order toasts that
// playback crossed. A seek re-renders all of it for the new moment.
import { API, $, el, show, api, identity, tokens, formatDuration } from './common.js';
import { createLivePlayer } from './mse-player.js';
import { renderChatLine, renderFeaturedCard, showOrderToast, productThumb } from './views.js';

const roomId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const params = new URLSearchParams(location.search);
const playerMode = params.get('player') || 'auto';
/** The chat pane keeps this many lines (the latest ones up to the playhead). */
const MAX_CHAT_LINES = 1000;
/** Events asked per timeline page (1…1000; `?timelinePage=` makes it smaller, as the e2e test does). */
const TIMELINE_PAGE = Math.max(1, Math.min(1000, Math.floor(Number(params.get('timelinePage'))) || 1000));
/** Timeline pages read at most (200 000 events at the full page size). */
const MAX_TIMELINE_PAGES = Math.ceil(200000 / TIMELINE_PAGE);

const video = $('#video');
const state = {
  me: null,
  room: null,
  player: null,
  events: [],   // every timeline event, in the server's order
  chats: [],    // `chat` events, sorted by t
  chapters: [],
  shown: { from: 0, to: 0 }, // chats[from..<to] are the lines in #replay-chat
  featuredId: null,
  pinnedSeq: null,
  lastTime: 0,
  timelineLoaded: false,
};

// --- page -----------------------------------------------------------------------------------

function setOverlay(icon, message, sub = '') {
  $('#overlay-icon').textContent = icon;
  $('#overlay-message').textContent = message;
  $('#overlay-sub').textContent = sub;
  show($('#overlay'), !!message);
}

async function loadRoom() {
  try {
    state.room = await api(`${API}/rooms/${encodeURIComponent(roomId)}`);
  } catch (error) {
    $('#room-title').textContent = error.status === 404 ? 'This room does not exist' : 'The room cannot be loaded';
    setOverlay('!', error.status === 404 ? 'Room not found' : error.message);
    return false;
  }
  const room = state.room;
  document.title = `${room.title} — replay — LiveHub`;
  $('#room-title').textContent = room.title;
  $('#room-host').textContent = room.shopOwnerName ? `Hosted by ${room.shopOwnerName}` : '';
  $('#room-description').textContent = room.description || '';
  if (room.status !== 'ENDED') {
    const link = $('#watch-link');
    link.href = `/watch/${encodeURIComponent(roomId)}`;
    show(link, true);
    setOverlay('●', room.status === 'LIVE' ? 'This show is still live' : 'This show has not happened yet', 'The replay is ready once it ends.');
    return false;
  }
  if (!room.replayUrl) {
    setOverlay('■', 'No replay for this show', 'It was not recorded, or its recording was deleted.');
    return false;
  }
  return true;
}

/** Every timeline event, page after page until `nextCursor` is null. */
async function loadTimeline() {
  const events = [];
  const chapters = new Map();
  let cursor = null;
  for (let page = 0; page < MAX_TIMELINE_PAGES; page++) {
    const query = new URLSearchParams({ limit: String(TIMELINE_PAGE) });
    if (cursor) query.set('cursor', cursor);
    const body = await api(`${API}/rooms/${encodeURIComponent(roomId)}/timeline?${query}`);
    for (const event of (body && body.events) || []) {
      if (event && event.type && Number.isFinite(Number(event.t))) events.push({ ...event, t: Number(event.t) });
    }
    for (const chapter of (body && body.chapters) || []) {
      if (chapter && chapter.id && Number.isFinite(Number(chapter.t))) chapters.set(chapter.id, { ...chapter, t: Number(chapter.t) });
    }
    state.timelinePages = page + 1;
    cursor = body && body.nextCursor;
    if (!cursor) break;
  }
  state.events = events;
  state.chats = events.filter((e) => e.type === 'chat' && e.data).map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.t - b.e.t || a.i - b.i).map(({ e }) => e);
  state.chapters = [...chapters.values()].sort((a, b) => a.t - b.t);
  state.timelineLoaded = true;
  renderChapters();
}

// --- the UI at a moment t -------------------------------------------------------------------

/** How many chat lines have `t ≤ time` (chats are sorted by t). */
function chatCountAt(time) {
  let low = 0;
  let high = state.chats.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (state.chats[mid].t <= time) low = mid + 1; else high = mid;
  }
  return low;
}

function chatLine(event) {
  const line = renderChatLine(event.data, { me: state.me });
  line.dataset.seq = event.seq;
  line.dataset.t = String(event.t);
  return line;
}

function renderChat(time) {
  const list = $('#replay-chat');
  const to = chatCountAt(time);
  const from = Math.max(0, to - MAX_CHAT_LINES);
  const shown = state.shown;
  if (to < shown.to || from >= shown.to) { // backwards, or a jump past everything shown: redraw
    list.replaceChildren(...state.chats.slice(from, to).map(chatLine));
  } else {
    for (let i = shown.to; i < to; i++) list.append(chatLine(state.chats[i]));
    for (let i = shown.from; i < from; i++) list.firstElementChild.remove();
  }
  const changed = to !== shown.to;
  state.shown = { from, to };
  if (changed) list.scrollTop = list.scrollHeight;
}

/** The product featured at `time`: the last `feature` not followed by its `unfeature`; and the pinned line. */
function stateAt(time) {
  let featured = null;
  let pinned = null;
  for (const event of state.events) {
    if (event.t > time) continue; // events come by wall clock; t is monotonic, but do not rely on it
    if (event.type === 'feature' && event.data) featured = event.data;
    else if (event.type === 'unfeature' && featured && event.data && (event.data.liveProductId === featured.id || (!event.data.liveProductId && event.data.productId === featured.productId))) featured = null;
    else if (event.type === 'pin' && event.data) pinned = event;
  }
  return { featured, pinned };
}

function renderAt(time, { playing = false } = {}) {
  if (!state.timelineLoaded) return;
  time = Math.max(0, Number(time) || 0);
  renderChat(time);
  const { featured, pinned } = stateAt(time);
  const featuredKey = featured ? `${featured.id}|${featured.productId}` : null;
  if (featuredKey !== state.featuredId) {
    state.featuredId = featuredKey;
    renderFeaturedCard($('#replay-product'), featured, { label: 'Shown now', roomId });
  }
  const pinnedSeq = pinned ? pinned.seq : null;
  if (pinnedSeq !== state.pinnedSeq) {
    state.pinnedSeq = pinnedSeq;
    $('#replay-pinned').textContent = pinned ? `${pinned.data.username ? `${pinned.data.username}: ` : ''}${pinned.data.message || ''}` : '';
    show($('#replay-pinned'), !!pinned);
  }
  // Order toasts pop when playback crosses their moment (not when a seek jumps over them).
  if (playing && time > state.lastTime && time - state.lastTime < 3) {
    for (const event of state.events) {
      if (event.type === 'order' && event.t > state.lastTime && event.t <= time) showOrderToast($('#order-toasts'), orderText(event.data || {}));
    }
  }
  state.lastTime = time;
  let current = null;
  for (const chapter of state.chapters) if (chapter.t <= time) current = chapter.id;
  for (const node of document.querySelectorAll('#replay-chapters .chapter')) node.classList.toggle('current', node.dataset.chapterId === current);
  $('#replay-clock').textContent = formatDuration(time);
  document.body.dataset.replayTime = String(time);
}

/** The same words as the live ORDER chat line. */
function orderText(order) {
  return `${order.username || 'A viewer'} just bought ${order.productName || 'a product'}!`;
}

function renderChapters() {
  const list = $('#replay-chapters');
  list.replaceChildren(...state.chapters.map((chapter) => {
    const name = chapter.productName || `Product ${chapter.productId}`;
    const thumb = productThumb({ productId: chapter.productId, productImageUrl: chapter.thumbnailUrl }, name);
    return el('li', { class: 'chapter', dataset: { chapterId: chapter.id, productId: chapter.productId || '', t: String(chapter.t) } },
      el('button', { type: 'button', title: `Jump to ${name}`, onclick: () => seek(chapter.t) },
        thumb,
        el('span', { class: 'chapter-name', text: name }),
        el('span', { class: 'chapter-time', text: formatDuration(chapter.t) })));
  }));
  $('#chapter-count').textContent = state.chapters.length ? `(${state.chapters.length})` : '';
  show($('#no-chapters'), state.chapters.length === 0);
}

// --- player ---------------------------------------------------------------------------------

function startPlayer() {
  const player = createLivePlayer(video, `/hls/${encodeURIComponent(roomId)}/vod.m3u8`, {
    mode: playerMode,
    onState: (s) => {
      player.state = s;
      if (s === 'error') setOverlay('!', 'The replay cannot be played', 'Try reloading the page.');
    },
  });
  state.player = player;
  video.dataset.player = player.kind;
  player.start();
}

function seek(t) {
  const end = Number.isFinite(video.duration) ? video.duration : Infinity;
  const target = Math.max(0, Math.min(Number(t) || 0, end));
  if (state.player && state.player.seek) state.player.seek(target); else video.currentTime = target;
  renderAt(target);
  return target;
}

video.addEventListener('timeupdate', () => { if (!video.seeking) renderAt(video.currentTime, { playing: !video.paused }); });
video.addEventListener('seeking', () => renderAt(video.currentTime));
video.addEventListener('playing', () => show($('#overlay'), false));

function markReady() {
  if (state.timelineLoaded && video.readyState >= 1) document.body.dataset.replayReady = '1';
}
video.addEventListener('loadedmetadata', markReady);

/** Test hooks (the Chromium e2e test) and a small API for embedding shops. */
window.livehubReplay = {
  /** Seeks to `t` seconds; resolves once the chat, card and chapters show that moment. */
  seek(t) {
    const target = seek(t);
    return new Promise((resolve) => requestAnimationFrame(() => resolve(target)));
  },
  get currentTime() { return video.currentTime; },
  get events() { return state.events; },
  get timelinePages() { return state.timelinePages; },
};

// --- start ----------------------------------------------------------------------------------

async function main() {
  const saved = tokens.get('viewer');
  const me = saved && identity(saved);
  if (me && !me.expired) state.me = me;
  if (!roomId) { $('#room-title').textContent = 'No room given'; return; }
  if (!(await loadRoom())) return;
  startPlayer();
  try {
    await loadTimeline();
  } catch (error) {
    $('#replay-chat').replaceChildren(el('li', { class: 'chat-line chat-system', text: `The chat replay cannot be loaded: ${error.message}` }));
    return;
  }
  renderAt(video.currentTime);
  markReady();
}

main();
