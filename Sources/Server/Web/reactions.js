// Reactions on the watch page (issue 22 §2): buttons that SEND `/app/live/{roomId}/react`
// `{"type": …}`, and icons floating up over the video for the counts the hub sums per window on
// `/topic/live/{roomId}/reactions` (`{"counts": {"heart": N, …}, "windowMs": 250}`).
// A burst never freezes the page: at most MAX_PER_WINDOW icons start per window, spread over it,
// and at most MAX_ON_SCREEN float at once (the counts beyond that are only summed in the badge).

export const REACTIONS = { heart: '❤️', fire: '🔥', clap: '👏', laugh: '😂', wow: '😮' };
const MAX_PER_WINDOW = 12;
const MAX_ON_SCREEN = 60;

/** Mounts the buttons and the floating layer on `frame` (the video's container). */
export function mountReactions({ stomp, roomId, frame }) {
  if (!frame) return null;
  const layer = document.createElement('div');
  layer.className = 'reaction-layer';
  layer.setAttribute('aria-hidden', 'true');
  const bar = document.createElement('div');
  bar.className = 'reaction-bar';
  bar.setAttribute('role', 'group');
  bar.setAttribute('aria-label', 'React');
  for (const [type, icon] of Object.entries(REACTIONS)) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'reaction-button';
    button.dataset.type = type;
    button.title = type;
    button.textContent = icon;
    button.addEventListener('click', () => {
      if (stomp.publish(`/app/live/${roomId}/react`, { type })) float(layer, type, 0); // at once, for the sender
    });
    bar.append(button);
  }
  const total = document.createElement('span');
  total.className = 'reaction-total';
  bar.append(total);
  frame.append(layer, bar);
  let sum = 0;
  stomp.subscribe(`/topic/live/${roomId}/reactions`, (message) => {
    if (!message || typeof message.counts !== 'object') return;
    const windowMs = Math.min(2000, Math.max(50, Number(message.windowMs) || 250));
    const entries = Object.entries(message.counts).filter(([type, n]) => REACTIONS[type] && Number(n) > 0);
    const all = entries.reduce((acc, [, n]) => acc + Number(n), 0);
    sum += all;
    total.textContent = sum ? `${sum}` : '';
    let budget = MAX_PER_WINDOW;
    for (const [type, n] of entries) {
      // Each type gets its share of the window's icons (at least one).
      const icons = Math.max(1, Math.min(budget, Math.round((Number(n) / all) * MAX_PER_WINDOW)));
      budget -= icons;
      for (let i = 0; i < icons; i++) float(layer, type, Math.random() * windowMs);
      if (budget <= 0) break;
    }
  });
  return { layer, bar };
}

function float(layer, type, delay) {
  setTimeout(() => {
    if (layer.childElementCount >= MAX_ON_SCREEN) return;
    const icon = document.createElement('span');
    icon.className = 'reaction-float';
    icon.dataset.type = type;
    icon.textContent = REACTIONS[type];
    icon.style.left = `${70 + Math.random() * 25}%`;
    icon.style.setProperty('--drift', `${Math.round((Math.random() - 0.5) * 60)}px`);
    icon.addEventListener('animationend', () => icon.remove());
    layer.append(icon);
    setTimeout(() => icon.remove(), 4000); // in case animations are off
  }, delay);
}
