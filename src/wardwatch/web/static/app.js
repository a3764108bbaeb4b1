/*
 * WardWatch control-centre page: whole-system and per-site bed occupancy, live.
 *
 * Vanilla ES2020, no build step, no external resources. Data comes from the JSON API with a
 * bearer token; live changes come from /api/stream (server-sent events), read with fetch()
 * by common.js's LiveStream (EventSource cannot send an Authorization header).
 *
 * Flow: token (from #token=… or the form) → open the stream → on every connect, every
 * `change` (throttled to once a second) and every `resync`, refetch /api/occupancy and
 * redraw. The refetch on connect happens after the server has subscribed us to the bus, so
 * no change can slip between the snapshot and the stream.
 */
'use strict';

(() => {
  const C = window.WardWatchCommon;   // common.js: h, api, tokens, SseParser, LiveStream
  const { h } = C;
  // Disconnected this long → "Disconnected" + stale banner. Tests may shorten it by setting
  // window.WardWatchConfig = {staleAfterMs: …} before this script runs.
  const STALE_AFTER_MS = Number((window.WardWatchConfig || {}).staleAfterMs) || 30_000;
  const REFRESH_MIN_GAP_MS = 1_000;   // at most one /api/occupancy fetch a second
  const REFRESH_RETRY_MS = 3_000;     // after a failed fetch (not auth)

  const KIND_ORDER = ['acute', 'community', 'care_home', 'virtual_ward'];
  const KIND_PLURAL = {
    acute: 'Acute hospitals',
    community: 'Community hospitals',
    care_home: 'Care homes',
    virtual_ward: 'Virtual wards',
  };
  const KIND_SINGULAR = {
    acute: 'Acute hospital',
    community: 'Community hospital',
    care_home: 'Care home',
    virtual_ward: 'Virtual ward',
  };

  const londonTime = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London', hour: '2-digit', minute: '2-digit', second: '2-digit',
    hourCycle: 'h23',
  });

  /* ---------------------------------------------------------------- state ------------ */

  const state = {
    token: null,
    stopped: true,           // true when not signed in (no token, or token refused)
    system: null,            // GET /api/system
    occupancy: null,         // GET /api/occupancy
    lastUpdate: null,        // Date of the snapshot on screen
    live: null,              // the LiveStream (connected, everConnected, downSince, …)
    // Refresh throttle: `dirty` means a newer snapshot is wanted.
    dirty: false,
    needSystem: true,
    inFlight: false,
    refreshTimer: null,
    lastFetchAt: 0,
    failingSince: null,      // Date.now() of the first failed refresh in a row
  };

  const $ = (id) => document.getElementById(id);

  /* ---------------------------------------------------------------- formatting ------- */

  const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
  const pct = (x) => (isNum(x) ? `${(x * 100).toFixed(1)}%` : '—');
  const int = (x) => (isNum(x) ? String(Math.round(x)) : '—');
  // 0.92 → "92%", 0.925 → "92.5%"
  const targetPct = (t) => (isNum(t) ? `${Number((t * 100).toFixed(1))}%` : '—');
  const clockTime = (d) => (d ? londonTime.format(d) : '—');
  const kindPlural = (k) => KIND_PLURAL[k] || titleCase(k);
  const kindSingular = (k) => KIND_SINGULAR[k] || titleCase(k);

  function titleCase(s) {
    const words = String(s || 'other').replace(/_/g, ' ');
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  /** Percentage points above the target, e.g. "1.4 points". */
  function pointsOver(occ, target) {
    const pts = (occ - target) * 100;
    return `${pts.toFixed(1)} point${pts.toFixed(1) === '1.0' ? '' : 's'}`;
  }

  /**
   * An occupancy bar on a 0–100 % scale (never truncated, so lengths are honest) with a
   * marker at the target. Red when over target; empty and labelled when there are no beds.
   */
  function bar(occ, target, over, extraClass) {
    const known = isNum(occ);
    const fill = known ? Math.max(0, Math.min(1, occ)) * 100 : 0;
    const label = known
      ? `Occupancy ${pct(occ)}, target ${targetPct(target)}${over ? ', over target' : ''}`
      : 'No open beds';
    return h('div', {
      class: `bar${extraClass ? ` ${extraClass}` : ''}${over ? ' is-over' : ''}${known ? '' : ' is-empty'}`,
      role: 'img', 'aria-label': label,
    },
    h('div', { class: 'bar-fill', style: { width: `${fill}%` } }),
    isNum(target) ? h('div', { class: 'bar-target', style: { left: `${target * 100}%` },
      title: `Target ${targetPct(target)}` }) : null);
  }

  /** Text + icon flag so "over target" never depends on colour alone. */
  function overFlag(over, occ, target, short) {
    if (!over || !isNum(occ)) return null;
    return h('span', { class: 'flag-over' }, h('span', { 'aria-hidden': 'true' }, '▲ '),
      short ? 'Over target' : `Over target by ${pointsOver(occ, target)}`);
  }

  /* ---------------------------------------------------------------- rendering -------- */

  function renderSystem() {
    const s = state.system;
    $('system-name').textContent = s ? s.name : '';
    document.title = s ? `WardWatch · ${s.name}` : 'WardWatch';
  }

  function renderOccupancy() {
    const o = state.occupancy;
    if (!o) return;
    const target = o.target;
    const sys = o.system;
    const ga = sys.general_acute || {};

    // Headline: G&A occupancy vs target.
    $('system-ga-occupancy').textContent = pct(ga.occupancy);
    $('system-target').textContent = targetPct(target);
    $('ga-card').dataset.over = String(Boolean(ga.over_target));
    $('ga-bar').replaceWith(Object.assign(bar(ga.occupancy, target, ga.over_target, 'bar-large'),
      { id: 'ga-bar' }));
    const flag = $('ga-flag');
    flag.replaceChildren();
    if (!isNum(ga.occupancy)) {
      flag.textContent = 'No open G&A beds';
    } else if (ga.over_target) {
      flag.append(overFlag(true, ga.occupancy, target, false));
    } else {
      flag.append(h('span', { class: 'flag-ok' }, h('span', { 'aria-hidden': 'true' }, '✓ '),
        'At or below target'));
    }
    $('ga-detail').textContent = isNum(ga.open)
      ? `${int(ga.occupied)} of ${int(ga.open)} open G&A beds occupied · ${int(ga.available)} available`
      : '';

    // Whole-system bed states.
    $('system-occupancy').textContent = pct(sys.occupancy);
    $('stat-occupancy').dataset.over = String(Boolean(sys.over_target));
    $('system-occupied-open').textContent = `${int(sys.occupied)} of ${int(sys.open)} open beds occupied`;
    $('system-available').textContent = int(sys.available);
    $('system-vacant-not-ready').textContent = int(sys.vacant_not_ready);
    $('system-cleaning-detail').textContent =
      `${int(sys.awaiting_clean)} awaiting clean · ${int(sys.cleaning)} being cleaned`;
    $('system-reserved').textContent = int(sys.reserved);
    $('system-blocked').textContent = int(sys.blocked);
    $('system-closed').textContent = int(sys.closed);

    const sites = mergedSites();
    renderKinds(sys.by_site_kind || {}, sites, target);
    renderSites(sites, target);
  }

  /**
   * Sites from the snapshot, plus any site in /api/system the snapshot leaves out (a site
   * with no wards yet): shown with no beds rather than silently missing.
   */
  function mergedSites() {
    const sites = [...(state.occupancy.sites || [])];
    const seen = new Set(sites.map((s) => s.code));
    for (const s of (state.system && state.system.sites) || []) {
      if (!seen.has(s.code)) {
        sites.push({ code: s.code, name: s.name, kind: s.kind, total: 0, open: 0, occupied: 0,
          available: 0, reserved: 0, vacant_not_ready: 0, awaiting_clean: 0, cleaning: 0,
          blocked: 0, closed: 0, occupancy: null, over_target: null });
      }
    }
    const rank = (k) => { const i = KIND_ORDER.indexOf(k); return i < 0 ? KIND_ORDER.length : i; };
    return sites.sort((a, b) => rank(a.kind) - rank(b.kind)
      || String(a.kind).localeCompare(String(b.kind))
      || String(a.name).localeCompare(String(b.name), 'en-GB'));
  }

  function orderedKinds(kinds) {
    return [...kinds].sort((a, b) => {
      const ra = KIND_ORDER.indexOf(a); const rb = KIND_ORDER.indexOf(b);
      return (ra < 0 ? 99 : ra) - (rb < 0 ? 99 : rb) || a.localeCompare(b);
    });
  }

  function renderKinds(byKind, sites, target) {
    const kinds = orderedKinds(new Set([...Object.keys(byKind), ...sites.map((s) => s.kind)]));
    const cards = kinds.map((kind) => {
      // The 92% target is a general & acute (hospital) standard: other places show occupancy.
      const judged = kind === 'acute';
      const c = Object.assign({}, byKind[kind] || {}, judged ? {} : { over_target: false });
      const n = sites.filter((s) => s.kind === kind).length;
      return h('article', { class: 'card kind-card', 'data-kind': kind, 'data-over': String(Boolean(c.over_target)) },
        h('h3', { class: 'card-label' }, kindPlural(kind),
          h('span', { class: 'card-hint' }, `${n} site${n === 1 ? '' : 's'}`)),
        h('div', { class: 'kind-figure' },
          h('span', { class: 'kind-value' }, pct(c.occupancy)),
          overFlag(c.over_target, c.occupancy, target, true)),
        bar(c.occupancy, judged ? target : null, c.over_target),
        h('p', { class: 'card-sub' },
          `${int(c.occupied || 0)} / ${int(c.open || 0)} occupied · ${int(c.available || 0)} available`));
    });
    $('kind-grid').replaceChildren(...cards);
  }

  function renderSites(sites, target) {
    const table = $('site-table');
    for (const tb of table.querySelectorAll('tbody')) tb.remove();
    for (const kind of orderedKinds(new Set(sites.map((s) => s.kind)))) {
      const group = sites.filter((s) => s.kind === kind);
      const tbody = h('tbody', { 'data-kind': kind },
        h('tr', { class: 'group-row' },
          h('th', { scope: 'rowgroup', colspan: 7 }, kindPlural(kind),
            h('span', { class: 'group-count' }, ` · ${group.length} site${group.length === 1 ? '' : 's'}`))),
        group.map((s) => siteRow(s, target)));
      table.append(tbody);
    }
  }

  function siteRow(s, target) {
    const ga = s.general_acute;
    const showGa = s.kind === 'acute' && ga;
    // The target is judged only for acute hospitals (a G&A standard), not care homes etc.
    const judged = s.kind === 'acute';
    const over = judged && (Boolean(s.over_target) || Boolean(showGa && ga.over_target));
    return h('tr', { class: 'site-row', 'data-site': s.code, 'data-testid': `site-${s.code}`,
      'data-over': String(over) },
    h('th', { scope: 'row', class: 'site-name' },
      h('span', { class: 'site-title' }, s.name),
      h('span', { class: 'site-meta' }, h('span', { class: 'site-code' }, s.code), ` · ${kindSingular(s.kind)}`)),
    h('td', { class: 'col-occ' },
      h('div', { class: 'occ-line' },
        h('span', { class: 'site-occupancy' }, pct(s.occupancy)),
        isNum(s.occupancy) ? overFlag(judged && s.over_target, s.occupancy, target, true)
          : h('span', { class: 'flag-none' }, 'No open beds')),
      bar(s.occupancy, judged ? target : null, judged && s.over_target)),
    h('td', { class: 'num site-occupied' }, `${int(s.occupied)} / ${int(s.open)}`),
    h('td', { class: 'num site-available' }, int(s.available)),
    h('td', { class: 'num site-vacant' }, int(s.vacant_not_ready)),
    h('td', { class: 'num site-blocked-closed' }, int((s.blocked || 0) + (s.closed || 0))),
    h('td', { class: `num site-ga${showGa && ga.over_target ? ' is-over' : ''}` },
      showGa ? [ga.over_target ? h('span', { 'aria-hidden': 'true' }, '▲ ') : null, pct(ga.occupancy),
        ga.over_target ? h('span', { class: 'visually-hidden' }, ' over target') : null]
        : h('span', { class: 'muted', title: 'G&A occupancy is reported for acute hospitals' }, 'n/a')));
  }

  /* ---------------------------------------------------------------- status ----------- */

  /** Header status, stale banner and "Updated" time; runs every second and on changes. */
  function renderStatus() {
    const el = $('live-status');
    const status = C.liveStatus(state, STALE_AFTER_MS, 'Disconnected');
    C.showLiveStatus(el, status);

    $('updated').textContent = `Updated ${clockTime(state.lastUpdate)}`;

    // Honesty: say so when the figures may no longer be current.
    const stale = status.stale;
    const banner = $('stale-banner');
    banner.hidden = !stale;
    if (stale) {
      $('stale-text').textContent = state.lastUpdate
        ? `last update ${clockTime(state.lastUpdate)}` : 'no data has been received yet';
    }
    document.body.classList.toggle('is-stale', stale);
  }

  /**
   * The hospital feeds that have gone quiet (HAZ-035): "Live" says this page hears WardWatch,
   * not that WardWatch hears the PAS, so a silent feed gets a banner of its own. A failed
   * fetch leaves what is shown; the next refresh tries again.
   */
  async function refreshFeeds(current) {
    let silent;
    try {
      silent = await api('/api/hl7/feeds/silent');
    } catch (err) {
      if (isAuthError(err)) throw err;
      return;
    }
    if (current()) renderFeeds(silent);
  }

  function renderFeeds(silent) {
    const el = $('feed-banner');
    el.hidden = silent.length === 0;
    el.replaceChildren(...silent.map((f) => h('p', { 'data-sender': f.sender },
      h('strong', null, `No HL7 messages from ${f.sender} since ${clockTime(new Date(f.last_heard_at))}`),
      ` (${f.quiet}): the board may be missing its admissions, moves and discharges since then.`)));
  }

  function showError(message) {
    const el = $('error-banner');
    el.hidden = !message;
    el.textContent = message || '';
  }

  /* ---------------------------------------------------------------- API -------------- */

  const api = (path) => C.api(state.token, path);
  const { isAuthError } = C;

  /* ---------------------------------------------------------------- refresh ---------- */

  /**
   * Ask for a fresh snapshot. Throttled: the first request after a quiet spell fetches at
   * once; later ones within a second collapse into one trailing fetch, so the last change
   * is always shown. Only one fetch is ever in flight, so responses cannot arrive out of order.
   */
  function requestRefresh({ system = false } = {}) {
    state.dirty = true;
    if (system) state.needSystem = true;
    if (state.refreshTimer !== null || state.inFlight || state.stopped) return;
    const wait = Math.max(0, state.lastFetchAt + REFRESH_MIN_GAP_MS - Date.now());
    state.refreshTimer = setTimeout(runRefresh, wait);
  }

  async function runRefresh() {
    state.refreshTimer = null;
    if (!state.dirty || state.stopped) return;
    state.dirty = false;
    state.inFlight = true;
    state.lastFetchAt = Date.now();
    // A sign-in during the fetch makes its answer stale: it is dropped, and a refused old
    // token must not sign out the session that replaced it.
    const token = state.token;
    const current = () => !state.stopped && token === state.token;
    let retryIn = 0;
    try {
      if (state.needSystem) {
        state.needSystem = false;
        try {
          const system = await api('/api/system');
          if (current()) {
            state.system = system;
            renderSystem();
          }
        } catch (err) {
          state.needSystem = true;
          throw err;
        }
      }
      const occupancy = await api('/api/occupancy');
      if (current()) {
        state.occupancy = occupancy;
        const at = new Date(occupancy.at);
        state.lastUpdate = Number.isNaN(at.getTime()) ? new Date() : at;
        state.failingSince = null;
        showError(null);
        $('dashboard').hidden = false;
        renderOccupancy();
      }
      await refreshFeeds(current);
    } catch (err) {
      if (!current()) {
        // stale: nothing to report; the new session's own refresh follows below
      } else if (isAuthError(err)) {
        authFailed(err.status, err.message);
      } else {
        if (state.failingSince === null) state.failingSince = Date.now();
        showError(`Could not load the figures: ${err.message}. Retrying…`);
        state.dirty = true;
        retryIn = REFRESH_RETRY_MS;
      }
    } finally {
      state.inFlight = false;
      renderStatus();
    }
    if (state.dirty && !state.stopped && state.refreshTimer === null) {
      const wait = Math.max(retryIn, state.lastFetchAt + REFRESH_MIN_GAP_MS - Date.now(), 0);
      state.refreshTimer = setTimeout(runRefresh, wait);
    }
  }

  /* ---------------------------------------------------------------- SSE -------------- */

  function onFrame(frame) {
    if (frame.type === 'change') {
      requestRefresh();
    } else if (frame.type === 'resync') {
      // The server could not keep us up to date event by event: start again from a snapshot.
      requestRefresh({ system: true });
    }
  }

  function streamOpened() {
    // We are subscribed now: a fresh snapshot covers anything missed while away.
    requestRefresh();
    renderStatus();
  }

  /* ---------------------------------------------------------------- sign-in ---------- */

  function start(token) {
    stop();
    state.token = token;
    state.stopped = false;
    state.failingSince = null;
    state.needSystem = true;
    $('auth-panel').hidden = true;
    showError(null);
    requestRefresh({ system: true });   // show figures even before the stream is up
    state.live = new C.LiveStream(token, {
      onOpen: streamOpened, onFrame, onDown: renderStatus, onAuthError: authFailed,
    });
    state.live.start();
    renderStatus();
  }

  function stop() {
    state.stopped = true;
    if (state.live) state.live.stop();
    clearTimeout(state.refreshTimer);
    state.refreshTimer = null;
    state.dirty = false;
  }

  function authFailed(status, message) {
    stop();
    state.token = null;
    C.forgetToken();
    // 401: unknown or revoked token. 403: a valid token whose role may not read capacity.
    const text = status === 403
      ? `Not authorised: this token may not view bed capacity (${message}). Paste a token with the read-only role or above.`
      : 'Not authorised: that access token was not recognised or has been revoked. Paste a valid access token.';
    showAuth(text);
    renderStatus();
  }

  function showAuth(message) {
    const msg = $('auth-message');
    msg.hidden = !message;
    msg.textContent = message || '';
    $('auth-panel').hidden = false;
    $('dashboard').hidden = true;
    showError(null);
    $('token-input').value = '';
    $('token-input').focus();
  }

  function init() {
    C.signIn(start, () => showAuth(null));
    renderStatus();
    setInterval(renderStatus, 1000);
  }

  // Exposed for tests and debugging; holds no secrets.
  window.WardWatch = { SseParser: C.SseParser };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
