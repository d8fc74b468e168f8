// Small view builders shared by the studio and the viewer page (text only — no innerHTML).
import { el, show, formatTime, formatMoney } from './common.js';

const AVATAR_COLORS = ['#ff3d71', '#ff8a3d', '#ffc94d', '#3ddc97', '#3dc4ff', '#8a7dff', '#ff7dd8'];

function colorFor(text) {
  let hash = 0;
  for (const ch of String(text || '')) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return AVATAR_COLORS[hash % AVATAR_COLORS.length];
}

/** One chat line: CHAT, SYSTEM or ORDER. */
export function renderChatLine(chat, { me } = {}) {
  const type = (chat.type || 'CHAT').toUpperCase();
  const name = chat.username || chat.userId || 'guest';
  const mine = me && chat.userId && chat.userId === me.userId;
  const item = el('li', { class: `chat-line chat-${type.toLowerCase()}${mine ? ' mine' : ''}${chat.isPinned ? ' pinned' : ''}`, dataset: { chatId: chat.id, type } });
  if (type === 'SYSTEM') {
    item.append(el('span', { class: 'chat-text', text: chat.message }));
    return item;
  }
  if (type === 'ORDER') {
    item.append(el('span', { class: 'icon-bag', 'aria-hidden': 'true' }), el('span', { class: 'chat-text', text: chat.message }));
    return item;
  }
  const avatar = el('span', { class: 'avatar avatar-sm', text: name.slice(0, 1).toUpperCase() });
  avatar.dataset.color = String(AVATAR_COLORS.indexOf(colorFor(chat.userId || name)));
  item.append(avatar, el('div', { class: 'chat-body' },
    el('span', { class: 'chat-name', text: name }),
    el('span', { class: 'chat-time', text: formatTime(chat.createdAt) }),
    el('span', { class: 'chat-text', text: chat.message })));
  return item;
}

/** A product image box with an initial-letter fallback. */
export function productThumb(p, name) {
  const box = el('div', { class: 'thumb' }, el('span', { text: (name || '?').slice(0, 1).toUpperCase() }));
  box.dataset.color = String(AVATAR_COLORS.indexOf(colorFor(p.productId || name)));
  if (p.productImageUrl) {
    const img = el('img', { alt: '', loading: 'lazy', referrerpolicy: 'no-referrer' });
    img.addEventListener('error', () => img.remove());
    img.src = p.productImageUrl;
    box.append(img);
  }
  return box;
}

/**
 * The shop's page for product `p` of room `roomId`: the server fills `<meta name="livehub-shop-product-url">`
 * from LIVEHUB_SHOP_PRODUCT_URL (`{productId}`, `{roomId}` placeholders); null when it is not set.
 */
export function shopProductUrl(p, roomId) {
  const meta = document.querySelector('meta[name="livehub-shop-product-url"]');
  const template = meta && meta.content;
  if (!template || !p || p.productId == null) return null;
  const url = template.replaceAll('{productId}', encodeURIComponent(String(p.productId))).replaceAll('{roomId}', encodeURIComponent(roomId || ''));
  return /^https?:\/\//i.test(url) ? url : null;
}

/** A "Buy" link to the shop's product page (a new tab), or null without LIVEHUB_SHOP_PRODUCT_URL. */
export function buyButton(p, roomId) {
  const href = shopProductUrl(p, roomId);
  if (!href) return null;
  return el('a', { class: 'buy-button', href, target: '_blank', rel: 'noopener', text: 'Buy' });
}

/** The featured product over the video (watch page "Now showing", replay page card), with its Buy button; hidden when `p` is null. */
export function renderFeaturedCard(spot, p, { label = 'Now showing', roomId = null } = {}) {
  if (!p) {
    spot.replaceChildren();
    delete spot.dataset.productId;
    delete spot.dataset.liveProductId;
    show(spot, false);
    return;
  }
  const name = p.productName || `Product ${p.productId}`;
  spot.dataset.productId = p.productId;
  if (p.id) spot.dataset.liveProductId = p.id;
  spot.replaceChildren(
    productThumb(p, name),
    el('div', { class: 'spot-body' },
      el('span', { class: 'spot-label', text: label }),
      el('span', { class: 'spot-name', text: name }),
      el('span', { class: 'product-price' },
        el('b', { class: 'live-price', text: formatMoney(p.livePrice) }),
        p.discountPercent >= 0.5 ? el('span', { class: 'discount', text: `-${Math.round(p.discountPercent)}%` }) : null)),
    buyButton(p, roomId));
  show(spot, true);
}

/** An order toast ("carol just bought Cashmere Scarf!") in `box`, three at most, gone after 6 s. */
export function showOrderToast(box, text) {
  const node = el('div', { class: 'order-toast', role: 'status' },
    el('span', { class: 'icon-bag', 'aria-hidden': 'true' }),
    el('span', { class: 'order-text', text }));
  box.append(node);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => node.classList.add('leaving'), 6000);
  setTimeout(() => node.remove(), 6500);
  return node;
}
