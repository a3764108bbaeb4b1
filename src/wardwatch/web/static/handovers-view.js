/*
 * WardWatch handover board: how it is drawn. Exposed as window.WardWatchHandoverView and
 * used by handovers.js, which loads after it.
 *
 * Waits are counted here, every tick, from each crew's arrival on the server's clock (taken
 * from the API's answers, so the board agrees with the server even when its clock is not the
 * wall clock): the counters tick without a reload and a crew changes band the second it
 * passes 15, 30, 45 or 60 minutes. The columns and crews are updated in place, keyed by site
 * code and handover id, so a counter is never rebuilt under the viewer's eyes.
 */
'use strict';

window.WardWatchHandoverView = (() => {
  const { h } = window.WardWatchCommon;
  const REANCHOR_MS = 10_000;   // re-read the server's clock only if it moved this much

  const londonTime = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  });
  const londonDay = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'UTC', weekday: 'short', day: 'numeric', month: 'short',
  });

  /* ---------------------------------------------------------------- time ------------- */

  let anchor = null;   // {server, local}: the server's clock, counted from its answers

  function serverNow() {
    return anchor ? anchor.server + (Date.now() - anchor.local) : Date.now();
  }

  /** A waiting crew's `minutes` were measured at the server's now: take the clock from it. */
  function anchorFrom(handovers) {
    const w = handovers.find((x) => x.status === 'waiting' && x.arrived_at && x.minutes !== null);
    if (!w) return;
    const estimate = Date.parse(w.arrived_at) + w.minutes * 60_000;
    if (!Number.isFinite(estimate)) return;
    if (anchor === null || Math.abs(estimate - serverNow()) > REANCHOR_MS) {
      anchor = { server: estimate, local: Date.now() };
    }
  }

  const clockTime = (ms) => londonTime.format(new Date(ms));
  /** "2026-01-05" → "Mon 5 Jan" (a calendar day: no time zone shift). */
  const dayText = (iso) => londonDay.format(new Date(`${iso}T12:00:00Z`));

  /** Seconds waited → the band. Breaches are waits *over* 15, 30, 45 and 60 minutes. */
  function band(seconds) {
    if (seconds > 3600) return 'severe';
    if (seconds > 2700) return 'release';
    if (seconds > 1800) return 'over30';
    if (seconds > 900) return 'over15';
    return 'ok';
  }
  const BAND_LABEL = {
    ok: 'Within 15', over15: 'Over 15', over30: 'Over 30', release: 'RELEASE', severe: 'Over 60',
  };

  /** 0 → "0:00", 905 s → "15:05", 4000 s → "66:40": minutes and seconds, never hours. */
  function counterText(seconds) {
    const s = Math.max(0, seconds);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  }

  /** An expected crew: "due in 7 min", "due now" (within a minute) or "overdue 4 min". */
  function dueText(expectedMs, now) {
    const minutes = (expectedMs - now) / 60_000;
    if (minutes >= 1) return { text: `due in ${Math.ceil(minutes)} min`, overdue: false };
    if (minutes > -1) return { text: 'due now', overdue: false };
    return { text: `overdue ${Math.floor(-minutes)} min`, overdue: true };
  }

  /* ---------------------------------------------------------------- figures ---------- */

  const FIGURES = [
    ['arrivals', 'Arrivals'], ['over_15', 'Over 15'], ['over_30', 'Over 30'],
    ['over_45', 'Over 45'], ['over_60', 'Over 60'], ['hours_lost', 'Hours lost'],
  ];

  function figureValue(key, f) {
    const v = f ? f[key] : null;
    if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
    return key === 'hours_lost' ? v.toFixed(2) : String(v);
  }

  /** Fill a <dl> with the day's figures; `extra` are [key, label, value] shown first. */
  function renderFigures(dl, f, extra = []) {
    const items = [...extra, ...FIGURES.map(([k, label]) => [k, label, figureValue(k, f)])];
    if (dl.children.length !== items.length) {
      dl.replaceChildren(...items.map(([k, label]) => h('div', { class: 'figure', 'data-figure': k },
        h('dt', {}, label), h('dd', { 'data-testid': `figure-${k}` }))));
    }
    items.forEach(([k, , value], i) => {
      const div = dl.children[i];
      const dd = div.querySelector('dd');
      if (dd.textContent !== value) dd.textContent = value;
      // A breach that happened today is picked out (the number says it too).
      const breach = k.startsWith('over_') || k === 'hours_lost';
      div.dataset.alert = String(breach && value !== '—' && Number(value) > 0);
    });
  }

  /* ---------------------------------------------------------------- OPEL ------------- */

  // The levels' meanings, shortened (OPEL framework): 1 able to meet demand, 2 signs of
  // pressure, 3 major pressures compromising flow, 4 unable to deliver comprehensive care.
  const OPEL_WORDS = {
    1: 'meeting demand', 2: 'signs of pressure', 3: 'major pressures',
    4: 'comprehensive care at risk',
  };

  function reasonsText(why) {
    if (Array.isArray(why)) return why.map(String).join('; ');
    return why ? String(why) : '';
  }

  /** An OPEL badge: "OPEL 3 · major pressures", coloured by level, the reasons on hover. */
  function opelBadge(el, opel) {
    if (!opel || !Number.isInteger(opel.level)) {
      el.hidden = true;
      el.replaceChildren();
      return;
    }
    el.hidden = false;
    el.dataset.level = String(opel.level);
    el.title = reasonsText(opel.why);
    const text = `OPEL ${opel.level}`;
    const word = OPEL_WORDS[opel.level] || '';
    if (el.textContent !== `${text}${word ? ` · ${word}` : ''}`) {
      el.replaceChildren(h('strong', {}, text), word ? ` · ${word}` : '');
    }
  }

  /** The divert panel, redrawn only when the advice changes (an opened list stays open). */
  function divertPanel(el, divert) {
    const json = divert && divert.under_pressure ? JSON.stringify(divert) : '';
    if (el.dataset.advice === json) return;
    el.dataset.advice = json;
    if (!json) {
      el.hidden = true;
      el.replaceChildren();
      return;
    }
    const opened = Boolean(el.querySelector('details[open]'));
    el.hidden = false;
    const reasons = (divert.reasons || []).map(String);
    const suggestions = (divert.suggestions || []).map((s) => h('li',
      { class: 'suggestion', 'data-site': s.site, 'data-testid': 'suggestion' },
      h('strong', {}, s.name || s.site), ' ', h('span', { class: 'code' }, s.site),
      h('span', { class: 'suggestion-facts' }, [
        Number.isFinite(s.distance_km) ? `${Number(s.distance_km.toFixed(1))} km` : null,
        Number.isInteger(s.level) ? `OPEL ${s.level}` : null,
        Number.isFinite(s.available_beds) ? `${s.available_beds} beds available` : null,
        Number.isFinite(s.mean_handover_minutes)
          ? `handovers ${Math.round(s.mean_handover_minutes)} min on average` : null,
      ].filter(Boolean).join(' · ')),
      (s.reasons || []).length
        ? h('span', { class: 'suggestion-why' }, (s.reasons || []).map(String).join('; ')) : null));
    const rejected = (divert.rejected || []).map((r) => h('li', { 'data-site': r.site },
      `${r.name || r.site}: ${r.reason}`));
    el.replaceChildren(
      h('p', { class: 'divert-head' }, h('strong', {}, '⚠ Under pressure'),
        reasons.length ? `: ${reasons.join('; ')}` : ''),
      suggestions.length
        ? h('div', {}, h('h4', {}, 'Divert or mutual aid: consider'),
          h('ol', { class: 'suggestions' }, suggestions))
        : h('p', { class: 'muted' }, 'No other site to suggest.'),
      rejected.length
        ? h('details', { class: 'rejected', open: opened },
          h('summary', {}, `Not suggested (${rejected.length})`),
          h('ul', {}, rejected))
        : null);
  }

  /* ---------------------------------------------------------------- crews ------------ */

  function makeCrew(id) {
    const c = {
      chip: h('span', { class: 'band', 'data-testid': 'band' }),
      counter: h('span', { class: 'counter', 'data-testid': 'counter' }),
      callsign: h('strong', { class: 'callsign', 'data-testid': 'callsign' }),
      category: h('span', { class: 'category' }),
      meta: h('p', { class: 'crew-meta' }),
      release: h('span', { class: 'release', 'data-testid': 'release' }),
      arrived: 0,
      releaseAt: 0,
    };
    c.li = h('li', { class: 'crew', 'data-handover-id': id, 'data-testid': 'crew' },
      h('div', { class: 'crew-time' }, c.counter, h('span', { class: 'unit' }, ' min')),
      h('div', { class: 'crew-main' },
        h('p', { class: 'crew-id' }, c.chip, c.callsign, c.category,
          h('span', { class: 'release-slot' }, c.release)), c.meta));
    return c;
  }

  function updateCrew(c, x) {
    c.arrived = Date.parse(x.arrived_at);
    c.releaseAt = x.release_due_at ? Date.parse(x.release_due_at) : c.arrived + 45 * 60_000;
    c.callsign.textContent = x.vehicle || 'No call sign';
    c.category.textContent = x.category || '';
    c.category.hidden = !x.category;
    c.meta.textContent = `${x.service} incident ${x.incident} · arrived ${clockTime(c.arrived)}`;
    tickCrew(c, serverNow());
  }

  function tickCrew(c, now) {
    const seconds = Math.max(0, Math.floor((now - c.arrived) / 1000));
    const b = band(seconds);
    const text = counterText(seconds);
    if (c.counter.textContent !== text) c.counter.textContent = text;
    if (c.li.dataset.band !== b) {
      c.li.dataset.band = b;
      c.chip.dataset.band = b;
      c.chip.textContent = BAND_LABEL[b];
    }
    const due = seconds > 2700;
    const release = due
      ? `⚑ Release now · due ${clockTime(c.releaseAt)}` : `release due ${clockTime(c.releaseAt)}`;
    if (c.release.textContent !== release) {
      c.release.textContent = release;
      c.release.classList.toggle('is-due', due);
    }
  }

  function makeExpected(id) {
    const e = {
      callsign: h('strong', { class: 'callsign' }),
      category: h('span', { class: 'category' }),
      at: h('span', { class: 'expected-at' }),
      due: h('span', { class: 'due', 'data-testid': 'due' }),
      meta: h('p', { class: 'crew-meta' }),
      expected: null,
    };
    e.li = h('li', { class: 'expected', 'data-handover-id': id, 'data-testid': 'expected' },
      h('p', { class: 'crew-id' }, e.callsign, e.category, e.at, e.due), e.meta);
    return e;
  }

  function updateExpected(e, x) {
    e.expected = x.expected_at ? Date.parse(x.expected_at) : null;
    e.callsign.textContent = x.vehicle || 'No call sign';
    e.category.textContent = x.category || '';
    e.category.hidden = !x.category;
    e.at.textContent = e.expected === null ? 'no time given' : `expected ${clockTime(e.expected)}`;
    const pre = x.pre_alert_at ? ` · pre-alert ${clockTime(Date.parse(x.pre_alert_at))}` : '';
    e.meta.textContent = `${x.service} incident ${x.incident}${pre}`;
    tickExpected(e, serverNow());
  }

  function tickExpected(e, now) {
    const d = e.expected === null ? { text: '', overdue: false } : dueText(e.expected, now);
    if (e.due.textContent !== d.text) e.due.textContent = d.text;
    e.due.hidden = !d.text;
    e.li.dataset.overdue = String(d.overdue);
  }

  /* ---------------------------------------------------------------- columns ---------- */

  const columns = new Map();   // site code → column

  function makeColumn(code) {
    const col = {
      name: h('h2', { class: 'site-name' }),
      code: h('span', { class: 'code site-code' }, code),
      opel: h('span', { class: 'opel', 'data-testid': 'opel' }),
      counts: h('p', { class: 'site-counts', 'data-testid': 'site-counts' }),
      figures: h('dl', { class: 'figures', 'data-testid': 'site-figures' }),
      divert: h('div', { class: 'divert', 'data-testid': 'divert', role: 'note' }),
      crews: h('ol', { class: 'crews', 'data-testid': 'crews' }),
      noCrews: h('p', { class: 'none' }, 'No crew waiting.'),
      expected: h('ol', { class: 'expected-list', 'data-testid': 'expected-list' }),
      noExpected: h('p', { class: 'none' }, 'No pre-alerts.'),
      crewCards: new Map(),
      expectedCards: new Map(),
    };
    col.el = h('article', { class: 'site', 'data-site': code, 'data-testid': 'site' },
      h('header', { class: 'site-head' },
        h('div', { class: 'site-title' }, col.name, col.code), col.opel, col.counts),
      col.figures, col.divert,
      h('h3', { class: 'list-title' }, 'Waiting to hand over'), col.crews, col.noCrews,
      h('h3', { class: 'list-title' }, 'Expected'), col.expected, col.noExpected);
    return col;
  }

  /** Put `items` into `list` in order, reusing each id's card; drop the rest. */
  function syncList(list, cards, items, make, update) {
    let prev = null;
    const seen = new Set();
    for (const x of items) {
      let card = cards.get(x.id);
      if (!card) { card = make(x.id); cards.set(x.id, card); }
      update(card, x);
      seen.add(x.id);
      const want = prev ? prev.nextSibling : list.firstChild;
      if (card.li !== want) list.insertBefore(card.li, want);
      prev = card.li;
    }
    for (const [id, card] of cards) {
      if (!seen.has(id)) { card.li.remove(); cards.delete(id); }
    }
  }

  /**
   * Draw the sites: [{site, name, figures, waiting, expected, opel, divert}] in order, each
   * column updated in place.
   */
  function render(container, sites) {
    let prev = null;
    const seen = new Set();
    for (const s of sites) {
      let col = columns.get(s.site);
      if (!col) { col = makeColumn(s.site); columns.set(s.site, col); }
      seen.add(s.site);
      col.name.textContent = s.name;
      opelBadge(col.opel, s.opel);
      const w = s.waiting.length;
      const e = s.expected.length;
      col.counts.textContent = `${w} waiting · ${e} expected`;
      col.el.dataset.waiting = String(w);
      renderFigures(col.figures, s.figures);
      divertPanel(col.divert, s.divert);
      syncList(col.crews, col.crewCards, s.waiting, makeCrew, updateCrew);
      syncList(col.expected, col.expectedCards, s.expected, makeExpected, updateExpected);
      col.noCrews.hidden = w > 0;
      col.noExpected.hidden = e > 0;
      const want = prev ? prev.nextSibling : container.firstChild;
      if (col.el !== want) container.insertBefore(col.el, want);
      prev = col.el;
    }
    for (const [code, col] of columns) {
      if (!seen.has(code)) { col.el.remove(); columns.delete(code); }
    }
  }

  /** Every tick: counters, bands, release flags and expected times. */
  function tick() {
    const now = serverNow();
    for (const col of columns.values()) {
      for (const c of col.crewCards.values()) tickCrew(c, now);
      for (const e of col.expectedCards.values()) tickExpected(e, now);
    }
  }

  return {
    serverNow, anchorFrom, clockTime, dayText, band, BAND_LABEL, counterText, dueText,
    renderFigures, opelBadge, render, tick,
  };
})();
