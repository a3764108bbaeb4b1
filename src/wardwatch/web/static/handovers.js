/*
 * WardWatch ambulance handover board: every crew waiting at each acute site's front door,
 * longest first, with a counter that ticks every second; the crews on their way; today's
 * figures per site and for the system; and, where the OPEL endpoints exist, each site's OPEL
 * level and, for a site under pressure, where ambulances could go instead.
 *
 * Opened as /handovers#token=… (a read-only token is enough). Vanilla ES2020, no build step,
 * no external resources; API calls, the token and the live stream come from common.js, the
 * drawing from handovers-view.js.
 *
 * Flow: token → open the stream → refetch GET /api/handovers (waiting and expected) and
 * GET /api/handovers/summary (today) on connect, on every `handover.*` event (throttled: at
 * most one fetch a second), on `resync` and every 30 s anyway (hours lost grow while crews
 * wait). OPEL (GET /api/opel, then GET /api/opel/divert?site=… per site) is fetched the same
 * way and on `opel.changed`; when the server has no OPEL endpoints (404) the board simply
 * shows none. Counters tick four times a second from the server's clock.
 */
'use strict';

(() => {
  const C = window.WardWatchCommon;
  const V = window.WardWatchHandoverView;
  // Tests may shorten the stale threshold: window.WardWatchConfig = {staleAfterMs: …}.
  const STALE_AFTER_MS = Number((window.WardWatchConfig || {}).staleAfterMs) || 30_000;
  const POLL_MS = 30_000;   // refetch this often even if no event arrives
  const TICK_MS = 250;      // counters: redrawn only when their text changes

  const londonTime = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  });
  const londonSeconds = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London', hour: '2-digit', minute: '2-digit', second: '2-digit',
    hourCycle: 'h23',
  });

  /* ---------------------------------------------------------------- state ------------ */

  const state = {
    token: null,
    stopped: true,           // no token, or the token was refused
    handovers: [],           // GET /api/handovers: open (waiting and expected)
    summary: null,           // GET /api/handovers/summary: today
    opel: null,              // GET /api/opel, or null (not available on this server)
    diverts: new Map(),      // site code → GET /api/opel/divert?site=…
    loaded: false,
    lastUpdate: null,
    failingSince: null,
    live: null,              // LiveStream
  };
  const $ = (id) => document.getElementById(id);

  /* ---------------------------------------------------------------- the board -------- */

  const byArrival = (a, b) => Date.parse(a.arrived_at) - Date.parse(b.arrived_at);
  /** Expected crews: soonest first; those without an expected time after, by pre-alert. */
  function byExpected(a, b) {
    const ea = a.expected_at ? Date.parse(a.expected_at) : Infinity;
    const eb = b.expected_at ? Date.parse(b.expected_at) : Infinity;
    if (ea !== eb) return ea - eb;
    const at = (x) => (x.pre_alert_at ? Date.parse(x.pre_alert_at) : 0);
    return at(a) - at(b);
  }

  /** The columns: the summary's sites (acute, by code), then any other site a crew is at. */
  function siteModels() {
    const sites = new Map();
    for (const s of (state.summary ? state.summary.sites : [])) {
      sites.set(s.site, { site: s.site, name: s.name, figures: s, waiting: [], expected: [] });
    }
    for (const x of state.handovers) {
      if (!sites.has(x.site)) {
        sites.set(x.site, { site: x.site, name: x.site_name, figures: null, waiting: [], expected: [] });
      }
      const s = sites.get(x.site);
      if (x.status === 'waiting') s.waiting.push(x);
      else if (x.status === 'expected') s.expected.push(x);
    }
    const opel = new Map(((state.opel && state.opel.sites) || []).map((o) => [o.site, o]));
    for (const s of sites.values()) {
      s.waiting.sort(byArrival);
      s.expected.sort(byExpected);
      s.opel = opel.get(s.site) || null;
      s.divert = state.diverts.get(s.site) || null;
    }
    return [...sites.values()];
  }

  function render() {
    if (!state.loaded) return;
    const sites = siteModels();
    V.render($('sites'), sites);
    const waiting = sites.reduce((n, s) => n + s.waiting.length, 0);
    const expected = sites.reduce((n, s) => n + s.expected.length, 0);
    V.renderFigures($('system-figures'), state.summary && state.summary.system, [
      ['waiting_now', 'Waiting now', String(waiting)],
      ['expected_now', 'Expected', String(expected)],
    ]);
    V.opelBadge($('system-opel'), state.opel && state.opel.system);
    $('day').textContent = state.summary ? `Today, ${V.dayText(state.summary.day)}` : '';
    $('empty').hidden = sites.length > 0;
  }

  async function loadBoard() {
    if (state.stopped) return;
    const [handovers, summary] = await Promise.all([
      C.api(state.token, '/api/handovers'), C.api(state.token, '/api/handovers/summary')]);
    if (state.stopped) return;
    state.handovers = handovers;
    state.summary = summary;
    state.loaded = true;
    state.lastUpdate = new Date();
    state.failingSince = null;
    V.anchorFrom(handovers);
    showError(null);
    render();
    renderStatus();
  }

  /**
   * OPEL levels and, per site on the board, the divert suggestions. Optional: a server
   * without the OPEL endpoints answers 404 and the board shows no OPEL at all.
   */
  async function loadOpel() {
    if (state.stopped) return;
    let opel;
    try {
      opel = await C.api(state.token, '/api/opel');
    } catch (err) {
      if (!(err instanceof C.ApiError && err.status === 404)) throw err;
      opel = null;
    }
    const diverts = new Map();
    if (opel) {
      const codes = state.summary
        ? state.summary.sites.map((s) => s.site) : (opel.sites || []).map((s) => s.site);
      const answers = await Promise.all(codes.map((code) => C.api(state.token,
        `/api/opel/divert?site=${encodeURIComponent(code)}`).catch((err) => {
        if (C.isAuthError(err)) throw err;
        return null;   // no suggestions for this site (or none on this server)
      })));
      codes.forEach((code, i) => { if (answers[i]) diverts.set(code, answers[i]); });
    }
    if (state.stopped) return;
    state.opel = opel;
    state.diverts = diverts;
    render();
  }

  const board = C.refresher(loadBoard, {
    onError: (err) => {
      if (C.isAuthError(err)) { authFailed(err.message); return false; }
      if (state.stopped) return false;
      if (state.failingSince === null) state.failingSince = Date.now();
      showError(`Could not load the handovers: ${err.message}. Retrying…`);
      renderStatus();
      return true;
    },
  });
  // OPEL is extra: a failure keeps the last levels shown and waits for the next refresh.
  const opel = C.refresher(loadOpel, {
    onError: (err) => {
      if (C.isAuthError(err)) authFailed(err.message);
      return false;
    },
  });

  function refreshAll() {
    board.request();
    opel.request();
  }

  /* ---------------------------------------------------------------- status ----------- */

  /** Header status, stale banner and "Updated" time; runs every second and on changes. */
  function renderStatus() {
    const status = C.liveStatus(state, STALE_AFTER_MS);
    C.showLiveStatus($('live-status'), status);
    $('updated').textContent = state.lastUpdate
      ? `Updated ${londonSeconds.format(state.lastUpdate)}` : 'Updated —';
    $('stale-banner').hidden = !status.stale;
    if (status.stale) {
      $('stale-text').textContent = state.lastUpdate
        ? `this board may be out of date (last update ${
          londonTime.format(state.lastUpdate)}); the counters still tick. Reconnecting…`
        : 'no handovers have been received yet. Reconnecting…';
    }
    document.body.classList.toggle('is-stale', status.stale);
  }

  function showError(message) {
    $('error-banner').hidden = !message;
    $('error-banner').textContent = message || '';
  }

  /* ---------------------------------------------------------------- stream ----------- */

  function onFrame(frame) {
    if (frame.type === 'resync') { refreshAll(); return; }
    if (frame.type !== 'change') return;
    let event;
    try { event = JSON.parse(frame.data); } catch (_) { refreshAll(); return; }
    const type = String((event && event.type) || '');
    // A crew's step changes the board, and may change a site's pressure and suggestions.
    if (type.startsWith('handover.') || type === 'system.loaded') refreshAll();
    else if (type.startsWith('opel.')) opel.request();
  }

  function streamOpened() {
    // Subscribed now: fresh snapshots cover anything missed while away.
    refreshAll();
    renderStatus();
  }

  /* ---------------------------------------------------------------- sign-in ---------- */

  function show(view) {
    $('auth-panel').hidden = view !== 'auth';
    $('main').hidden = view !== 'main';
    renderStatus();
  }

  function stop() {
    state.stopped = true;
    board.stop();
    opel.stop();
    if (state.live) state.live.stop();
    state.live = null;
  }

  function begin(token) {
    stop();
    state.token = token;
    state.stopped = false;
    state.failingSince = null;
    show('main');
    showError(null);
    board.start();
    opel.start();
    refreshAll();   // show the board even before the stream is up
    state.live = new C.LiveStream(token, {
      onOpen: streamOpened,
      onFrame,
      onDown: renderStatus,
      onAuthError: (_status, message) => authFailed(message),
    });
    state.live.start();
    renderStatus();
  }

  function authFailed(message) {
    stop();
    state.token = null;
    C.forgetToken();
    const msg = $('auth-message');
    msg.hidden = false;
    const why = message || 'this token was not recognised or has been revoked';
    msg.textContent = `Not authorised: ${why}. This board needs a token that can read `
      + 'capacity (read-only is enough).';
    show('auth');
    showError(null);
  }

  function init() {
    C.onWake(state, () => refreshAll());
    C.signIn(begin, () => show('auth'));
    setInterval(V.tick, TICK_MS);
    setInterval(renderStatus, 1_000);
    setInterval(() => { if (!state.stopped) refreshAll(); }, POLL_MS);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
