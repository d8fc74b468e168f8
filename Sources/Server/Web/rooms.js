// The list of live rooms (`/rooms`) with thumbnails; refreshed every 10 s.
import { API, $, el, show, api, formatCount, statusLabel, statusClass } from './common.js';

function thumbnail(room) {
  const box = el('div', { class: 'room-thumb' }, el('span', { class: 'room-thumb-fallback', text: (room.title || '?').slice(0, 1).toUpperCase() }));
  const sources = [];
  if (room.status === 'LIVE') sources.push(`/hls/${encodeURIComponent(room.id)}/thumbnail.jpg?t=${Math.floor(Date.now() / 10000)}`);
  if (room.thumbnailUrl) sources.push(room.thumbnailUrl);
  if (sources.length) {
    const img = el('img', { alt: '', loading: 'lazy', referrerpolicy: 'no-referrer' });
    img.addEventListener('error', () => { // next source, else the letter fallback
      const next = sources.shift();
      if (next) img.src = next; else img.remove();
    });
    img.src = sources.shift();
    box.append(img);
  }
  return box;
}

function card(room) {
  const live = room.status === 'LIVE';
  return el('li', { class: 'room-card', dataset: { roomId: room.id } },
    el('a', { href: `/watch/${encodeURIComponent(room.id)}` },
      el('div', { class: 'room-media' },
        thumbnail(room),
        el('span', { class: `badge-status`, dataset: { status: statusClass(room.status, room.reconnecting) }, text: live && !room.reconnecting ? 'LIVE' : statusLabel(room.status, room.reconnecting) }),
        live ? el('span', { class: 'badge-viewers', text: formatCount(room.viewerCount), title: 'Viewers' }) : null),
      el('div', { class: 'room-card-body' },
        el('span', { class: 'room-card-title', text: room.title }),
        el('span', { class: 'muted small', text: room.shopOwnerName || room.shopOwnerId || '' }))));
}

async function load() {
  try {
    const [live, upcoming] = await Promise.all([
      api(`${API}/rooms?status=LIVE&page=0&size=48`),
      api(`${API}/rooms?status=WAITING_STREAM&page=0&size=12`).catch(() => ({ items: [] })),
    ]);
    const liveItems = (live && live.items) || [];
    const upcomingItems = (upcoming && upcoming.items) || [];
    $('#live-rooms').replaceChildren(...liveItems.map(card));
    show($('#no-live'), liveItems.length === 0);
    $('#upcoming-rooms').replaceChildren(...upcomingItems.map(card));
    show($('#upcoming-section'), upcomingItems.length > 0);
    $('#rooms-updated').textContent = `${liveItems.length} live · updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $('#rooms-updated').textContent = `Could not load rooms: ${error.message}`;
  }
}

load();
setInterval(load, 10000);
