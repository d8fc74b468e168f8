// Moderation on the pages (issue 22 §3; README "Moderation"): the watch page hides a line the
// moment `{"type":"DELETED","id"}` arrives on the chat topic; the studio gets per-line actions
// (delete, mute 10 min, ban), moderators, chat settings, held lines and the moderation log.
// Text reaches the DOM only through textContent (el()).
import { API, el, api, toast, formatTime } from './common.js';

/**
 * A chat-topic message that is a moderator's delete: removes line `id` from `list` at once and
 * marks it seen (so a late copy of it is never shown). Returns true when it was one.
 */
export function handleChatDeleted(message, list, seen) {
  if (!message || message.type !== 'DELETED' || !message.id) return false;
  if (seen) seen.add(message.id);
  for (const node of list.querySelectorAll('[data-chat-id]')) {
    if (node.dataset.chatId === message.id) node.remove();
  }
  return true;
}

const room = (roomId) => `${API}/rooms/${encodeURIComponent(roomId)}`;

async function act(label, request) {
  try {
    const answer = await request();
    toast(label, { kind: 'success' });
    return answer;
  } catch (error) {
    toast(error.message, { kind: 'error', title: 'Refused' });
    return undefined;
  }
}

/** Delete / mute 10 min / ban buttons for one chat line of the studio (not on ORDER or own lines). */
export function chatLineActions(chat, { roomId, token, me, onChange } = {}) {
  const type = (chat.type || 'CHAT').toUpperCase();
  if (type !== 'CHAT' && type !== 'ORDER') return null;
  const box = el('span', { class: 'mod-actions' });
  box.append(el('button', {
    class: 'btn btn-ghost btn-xs', type: 'button', title: 'Delete this line', text: 'Delete', dataset: { action: 'delete' },
    onclick: () => act('Line deleted', () => api(`${room(roomId)}/chats/${encodeURIComponent(chat.id)}`, { method: 'DELETE', token })).then(onChange),
  }));
  if (type === 'CHAT' && chat.userId && (!me || chat.userId !== me.userId)) {
    box.append(
      el('button', {
        class: 'btn btn-ghost btn-xs', type: 'button', title: 'Mute for 10 minutes', text: 'Mute 10 min', dataset: { action: 'mute' },
        onclick: () => act(`${chat.username || chat.userId} muted for 10 minutes`, () => api(`${room(roomId)}/mutes`, { method: 'POST', token, body: { userId: chat.userId, minutes: 10 } })).then(onChange),
      }),
      el('button', {
        class: 'btn btn-ghost btn-xs', type: 'button', title: 'Ban from this chat', text: 'Ban', dataset: { action: 'ban' },
        onclick: () => act(`${chat.username || chat.userId} banned`, () => api(`${room(roomId)}/bans`, { method: 'POST', token, body: { userId: chat.userId } })).then(onChange),
      }));
  }
  return box;
}

/**
 * The studio's moderation card for `roomId` in `container`: moderators (add/remove), chat
 * settings, held lines (approve/drop), bans and mutes (lift), and the moderation log. Returns
 * `{ refresh }`.
 */
export function mountModerationPanel(container, { roomId, token }) {
  const moderators = el('ul', { class: 'mod-list', id: 'mod-moderators' });
  const modInput = el('input', { id: 'mod-add-input', placeholder: 'User id', maxlength: '128', 'aria-label': 'Moderator user id' });
  const slow = el('input', { id: 'mod-slow', type: 'number', min: '0', max: '3600', step: '1', value: '0', 'aria-label': 'Slow mode seconds' });
  const words = el('textarea', { id: 'mod-words', rows: '2', placeholder: 'blocked words, one per line or comma-separated', 'aria-label': 'Blocked words' });
  const action = el('select', { id: 'mod-word-action', 'aria-label': 'Blocked word action' },
    el('option', { value: 'hold', text: 'hold for approval' }), el('option', { value: 'drop', text: 'drop' }));
  const links = el('input', { id: 'mod-links', type: 'checkbox' });
  const held = el('ul', { class: 'mod-list', id: 'mod-held' });
  const restricted = el('ul', { class: 'mod-list', id: 'mod-restricted' });
  const log = el('ol', { class: 'mod-log', id: 'mod-log' });

  const addForm = el('form', { class: 'mod-row', id: 'mod-add-form' }, modInput, el('button', { class: 'btn btn-sm', type: 'submit', text: 'Add moderator' }));
  addForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const userId = modInput.value.trim();
    if (!userId) return;
    if (await act(`${userId} is a moderator`, () => api(`${room(roomId)}/moderators`, { method: 'POST', token, body: { userId } })) !== undefined) modInput.value = '';
    refresh();
  });
  const settingsForm = el('form', { class: 'stack mod-settings', id: 'mod-settings-form' },
    el('label', { class: 'field' }, el('span', { text: 'Slow mode (seconds per line, 0 = off)' }), slow),
    el('label', { class: 'field' }, el('span', { text: 'Blocked words' }), words),
    el('label', { class: 'field' }, el('span', { text: 'A line with a blocked word is' }), action),
    el('label', { class: 'check' }, links, el('span', { text: ' Links only from me and moderators' })),
    el('button', { class: 'btn btn-sm btn-primary', type: 'submit', text: 'Save chat settings' }));
  settingsForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = {
      slowModeSeconds: Math.max(0, Math.min(3600, Math.trunc(Number(slow.value) || 0))),
      blockedWords: words.value.split(/[\n,]/).map((w) => w.trim()).filter(Boolean),
      blockedWordAction: action.value,
      linksOnlyFromModerators: links.checked,
    };
    await act('Chat settings saved', () => api(`${room(roomId)}/chat-settings`, { method: 'PUT', token, body }));
    refresh();
  });

  container.replaceChildren(
    el('h2', { text: 'Moderation' }),
    el('h3', { text: 'Moderators' }), moderators, addForm,
    el('h3', { text: 'Chat settings' }), settingsForm,
    el('h3', { text: 'Held for review' }), held,
    el('h3', { text: 'Muted and banned' }), restricted,
    el('div', { class: 'card-head' }, el('h3', { text: 'Moderation log' }),
      el('button', { class: 'btn btn-ghost btn-sm', type: 'button', title: 'Refresh', text: '↻', onclick: () => refresh() })),
    log);

  function empty(list, text) {
    if (!list.children.length) list.append(el('li', { class: 'muted small', text }));
  }

  async function refresh() {
    const base = room(roomId);
    const [mods, settings, heldLines, mutes, bans, entries] = await Promise.allSettled([
      api(`${base}/moderators`, { token }), api(`${base}/chat-settings`, { token }), api(`${base}/held-chats`, { token }),
      api(`${base}/mutes`, { token }), api(`${base}/bans`, { token }), api(`${base}/moderation-log?limit=50`, { token }),
    ]);
    if (mods.status === 'fulfilled') {
      moderators.replaceChildren(...mods.value.moderators.map((userId) => el('li', { class: 'mod-row', dataset: { userId } },
        el('span', { text: userId }),
        el('button', {
          class: 'btn btn-ghost btn-xs', type: 'button', text: 'Remove',
          onclick: () => act(`${userId} is no longer a moderator`, () => api(`${base}/moderators/${encodeURIComponent(userId)}`, { method: 'DELETE', token })).then(refresh),
        }))));
      empty(moderators, 'No moderators yet.');
    }
    if (settings.status === 'fulfilled') {
      slow.value = String(settings.value.slowModeSeconds);
      words.value = settings.value.blockedWords.join('\n');
      action.value = settings.value.blockedWordAction;
      links.checked = !!settings.value.linksOnlyFromModerators;
    }
    if (heldLines.status === 'fulfilled') {
      held.replaceChildren(...heldLines.value.map((line) => el('li', { class: 'mod-row', dataset: { heldId: line.id } },
        el('span', { class: 'chat-name', text: line.username || line.userId }),
        el('span', { class: 'chat-text', text: line.message }),
        el('button', {
          class: 'btn btn-xs btn-primary', type: 'button', text: 'Approve', dataset: { action: 'approve' },
          onclick: () => act('Approved', () => api(`${base}/held-chats/${encodeURIComponent(line.id)}/approve`, { method: 'POST', token })).then(refresh),
        }),
        el('button', {
          class: 'btn btn-xs btn-ghost', type: 'button', text: 'Drop', dataset: { action: 'drop' },
          onclick: () => act('Dropped', () => api(`${base}/held-chats/${encodeURIComponent(line.id)}`, { method: 'DELETE', token })).then(refresh),
        }))));
      empty(held, 'Nothing held.');
    }
    const rows = [];
    if (mutes.status === 'fulfilled') {
      for (const mute of mutes.value) {
        rows.push(el('li', { class: 'mod-row' }, el('span', { text: `${mute.userId} — muted until ${formatTime(mute.until)}` }),
          el('button', {
            class: 'btn btn-ghost btn-xs', type: 'button', text: 'Unmute',
            onclick: () => act(`${mute.userId} unmuted`, () => api(`${base}/mutes/${encodeURIComponent(mute.userId)}`, { method: 'DELETE', token })).then(refresh),
          })));
      }
    }
    if (bans.status === 'fulfilled') {
      for (const userId of bans.value.bans) {
        rows.push(el('li', { class: 'mod-row' }, el('span', { text: `${userId} — banned` }),
          el('button', {
            class: 'btn btn-ghost btn-xs', type: 'button', text: 'Unban',
            onclick: () => act(`${userId} unbanned`, () => api(`${base}/bans/${encodeURIComponent(userId)}`, { method: 'DELETE', token })).then(refresh),
          })));
      }
    }
    restricted.replaceChildren(...rows);
    empty(restricted, 'Nobody is muted or banned.');
    if (entries.status === 'fulfilled') {
      log.replaceChildren(...entries.value.map((entry) => el('li', { class: 'mod-log-entry', dataset: { action: entry.action } },
        el('span', { class: 'chat-time', text: formatTime(entry.createdAt) }),
        el('b', { text: ` ${entry.action.replaceAll('_', ' ').toLowerCase()}` }),
        el('span', { text: ` by ${entry.actorId}${entry.targetUserId ? ` → ${entry.targetUserId}` : ''}` }),
        entry.detail && entry.detail.message ? el('span', { class: 'muted', text: ` “${entry.detail.message}”` }) : null)));
      empty(log, 'No moderation yet.');
    }
  }

  refresh();
  return { refresh };
}
