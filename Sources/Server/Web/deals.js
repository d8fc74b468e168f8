// Flash deals on the watch page (issue 22 §1): the featured product's card shows the live deal
// price, a countdown on the server's clock, "N left" and a Claim button for signed-in viewers.
// Events come from `/topic/live/{roomId}/deal`; each carries `serverTime`, so the countdown is
// `deal.endsAt - (Date.now() + offset)` with `offset = serverTime - Date.now()` on arrival —
// right whatever the viewer's clock says.
import { API, $, el, api, toast, formatMoney } from './common.js';

/** Attaches the deal box to the featured spot; returns `{ refresh }` for the page to call after
 *  it re-renders the spot. */
export function attachDeals({ stomp, roomId, spot = $('#featured-spot'), token = () => '' }) {
  const deals = new Map(); // id -> deal (scheduled or live)
  let offset = 0; // server time − local time, ms
  let ticker = null;

  const serverNow = () => Date.now() + offset;

  function learn(serverTime) {
    const at = Date.parse(serverTime);
    if (Number.isFinite(at)) offset = at - Date.now();
  }

  function keep(deal) {
    if (deal.status === 'ended' || deal.status === 'cancelled') deals.delete(deal.id);
    else deals.set(deal.id, deal);
  }

  /** The deal to show: the featured product's, live first, else the next one. */
  function current() {
    const featured = spot.dataset.liveProductId;
    const now = serverNow();
    const candidates = [...deals.values()]
      .filter((d) => d.liveProductId === featured && Date.parse(d.endsAt) > now)
      .sort((a, b) => Date.parse(a.startsAt) - Date.parse(b.startsAt));
    return candidates[0] || null;
  }

  function clock(ms) {
    const total = Math.max(0, Math.ceil(ms / 1000));
    const m = Math.floor(total / 60);
    const s = total % 60;
    return `${m}:${String(s).padStart(2, '0')}`;
  }

  function tick() {
    const box = spot.querySelector('.deal-box');
    const deal = current();
    if (!box || !deal || box.dataset.dealId !== deal.id) { refresh(); return; }
    const now = serverNow();
    const starts = Date.parse(deal.startsAt);
    const ends = Date.parse(deal.endsAt);
    const started = now >= starts;
    box.dataset.phase = !started ? 'soon' : (deal.remaining > 0 ? 'live' : 'sold-out');
    box.querySelector('.deal-countdown').textContent = started ? `Ends in ${clock(ends - now)}` : `Starts in ${clock(starts - now)}`;
    box.querySelector('.deal-left').textContent = deal.remaining > 0 ? `${deal.remaining} left` : 'Sold out';
    const button = box.querySelector('.deal-claim');
    if (button) button.disabled = !started || deal.remaining <= 0;
  }

  async function claim(deal, button) {
    button.disabled = true;
    try {
      const answer = await api(`${API}/rooms/${encodeURIComponent(roomId)}/deals/${encodeURIComponent(deal.id)}/claims`,
        { method: 'POST', body: { quantity: 1 }, token: token() });
      const until = new Date(Date.parse(answer.expiresAt) - offset).toLocaleTimeString();
      toast(`Reserved for you until ${until}. Complete your order to keep it.`, { kind: 'success', title: 'Deal claimed' });
    } catch (error) {
      toast(error.message, { kind: 'error', title: 'Not claimed' });
    } finally {
      tick();
    }
  }

  /** (Re)draws the box in the featured spot; the page calls it after redrawing the spot. */
  function refresh() {
    const old = spot.querySelector('.deal-box');
    const deal = current();
    if (!deal) { if (old) old.remove(); return; }
    if (old && old.dataset.dealId === deal.id) { old.querySelector('.deal-price').textContent = formatMoney(deal.dealPrice); return; }
    if (old) old.remove();
    const body = spot.querySelector('.spot-body');
    if (!body) return;
    const signedIn = !!token();
    const box = el('div', { class: 'deal-box', dataset: { dealId: deal.id } },
      el('span', { class: 'deal-label', text: '⚡ Flash deal' }),
      el('span', { class: 'deal-prices' },
        el('b', { class: 'deal-price', text: formatMoney(deal.dealPrice) }),
        deal.originalPrice ? el('s', { class: 'deal-original', text: formatMoney(deal.originalPrice) }) : null),
      el('span', { class: 'deal-countdown' }),
      el('span', { class: 'deal-left' }),
      signedIn
        ? el('button', { class: 'btn btn-sm btn-primary deal-claim', type: 'button', text: 'Claim', onclick: (event) => claim(deal, event.currentTarget) })
        : el('span', { class: 'deal-guest muted small', text: 'Sign in to claim' }));
    body.append(box);
    tick();
  }

  stomp.subscribe(`/topic/live/${roomId}/deal`, (message) => {
    if (!message || !message.deal) return;
    learn(message.serverTime);
    keep(message.deal);
    refresh();
  });
  api(`${API}/rooms/${encodeURIComponent(roomId)}/deals`).then((list) => {
    for (const deal of list || []) if (!deals.has(deal.id)) keep(deal);
    refresh();
  }).catch(() => {});
  ticker = setInterval(() => { if (deals.size) tick(); }, 250);
  return { refresh, stop: () => clearInterval(ticker), serverNow };
}

/** The studio's "Create deal" form for the featured product, in `container`. `room()` and
 *  `products()` read the studio's state; call `refresh()` after the products change. */
export function attachStudioDeals({ container, room, products, token }) {
  const field = (id, label, attrs) => el('label', { class: 'deal-field' }, el('span', { text: label }), el('input', { id, type: 'number', required: true, ...attrs }));
  const error = el('p', { class: 'form-error', id: 'deal-error', role: 'alert' });
  const title = el('p', { class: 'muted small', id: 'deal-target' });
  const form = el('form', { class: 'deal-form', id: 'deal-form' },
    field('deal-price', 'Deal price', { min: '0', step: '0.01' }),
    field('deal-quantity', 'Units', { min: '1', max: '1000000', step: '1', value: '100' }),
    field('deal-per-buyer', 'Per buyer', { min: '1', step: '1', value: '1' }),
    field('deal-starts', 'Starts in (s)', { min: '0', max: '3600', step: '1', value: '0' }),
    field('deal-duration', 'Lasts (s)', { min: '10', max: '3600', step: '1', value: '300' }),
    el('button', { class: 'btn btn-sm btn-primary', type: 'submit', text: '⚡ Create deal' }));
  container.replaceChildren(el('h3', { class: 'deal-heading', text: 'Flash deal' }), title, form, error);

  const featured = () => (products() || []).find((p) => p.isFeatured) || null;
  function refresh() {
    const p = featured();
    container.classList.toggle('hidden', !room());
    title.textContent = p ? `On the featured product: ${p.productName || p.productId}` : 'Feature a product to put it on a flash deal.';
    form.querySelector('button').disabled = !p;
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const p = featured();
    if (!p || !room()) return;
    const value = (id) => Number(form.querySelector(`#${id}`).value);
    try {
      await api(`${API}/rooms/${encodeURIComponent(room().id)}/deals`, {
        method: 'POST', token: token(),
        body: { liveProductId: p.id, dealPrice: value('deal-price'), quantity: value('deal-quantity'), perBuyerLimit: value('deal-per-buyer'),
          startsInSeconds: value('deal-starts'), durationSeconds: value('deal-duration') },
      });
      toast('The deal is on.', { kind: 'success', title: 'Flash deal' });
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  refresh();
  return { refresh };
}
