/*
 * WardWatch virtual-ward caseload: the patients a virtual-ward team monitors at home, most at
 * risk first, with each patient's trends and the alert triage workflow.
 *
 * Opened as /virtual-ward?ward=…&team=…#token=… (both filters optional). Vanilla ES2020, no
 * build step, no external resources; API calls, the token and the live stream come from
 * common.js. This file holds the page's state and flow; the other parts load before it:
 * caseload-format.js (the server's clock, times), caseload-charts.js (the trend charts),
 * caseload-alerts.js (alert chips and triage cards), caseload-rows.js (the table's rows).
 *
 * Flow: token → open the stream → refetch GET /api/virtual-ward/caseload on connect, on every
 * `vw.*` or `alert.*` event (throttled: at most one fetch a second), on `resync` and every
 * minute anyway. The open patient's panel (enrolment, readings, scores, its alerts with their
 * history) is refetched the same way when an event names that patient. Countdowns and ages
 * tick every second from the server's clock (the demo runs a fast one). Triage buttons POST
 * the step; the answer updates the card at once, a refusal shows the server's reason on it.
 * Inputs being typed into are never redrawn: alert cards are updated in place.
 */
'use strict';

(() => {
  const C = window.WardWatchCommon;
  const F = window.WardWatchCaseloadFormat;
  const Charts = window.WardWatchCaseloadCharts;
  const Alerts = window.WardWatchCaseloadAlerts;
  const Rows = window.WardWatchCaseloadRows;
  const { h } = C;
  const {
    HOUR, londonTime, londonSeconds, serverNow, anchorFromAlert, anchorFromEnrolments,
    planIntervalMs, planText, person, agoEl, when,
  } = F;
  const { shortName, withUnit } = Charts;
  const { riskOf, news2Badge } = Rows;
  const CONFIG = window.WardWatchConfig || {};
  // Tests may shorten the stale threshold: window.WardWatchConfig = {staleAfterMs: …}.
  const STALE_AFTER_MS = Number(CONFIG.staleAfterMs) || 30_000;
  const POLL_MS = 60_000;            // refetch this often even if no event arrives

  /* ---------------------------------------------------------------- state ------------ */

  const state = {
    token: null,
    stopped: true,           // no token, or the token was refused
    ward: '',                // filters (also in the address bar)
    team: '',
    wardNames: new Map(),    // ward code → name
    teams: [],               // [{code, name}] for the team filter
    needMeta: true,
    enrolments: [],          // the caseload on screen, in server order (worst first)
    loaded: false,
    lastUpdate: null,
    failingSince: null,
    live: null,              // LiveStream
    selected: null,          // enrolment id of the open panel
    enrolment: null,         // its EnrolmentRead
    hours: 24,               // trend range
    chartData: null,         // {readings, scores} drawn, to redraw at a new width
  };
  const $ = (id) => document.getElementById(id);
  const wardName = (code) => state.wardNames.get(code) || code;

  /* ---------------------------------------------------------------- caseload --------- */

  /** Every second: ages, countdowns, and the summary's overdue and stale counts. */
  function tick() {
    F.tick();
    renderSummary();
  }

  /** The rows, the empty-caseload note and the summary, from state.enrolments. */
  function renderCaseload() {
    Rows.render($('caseload-body'), state.enrolments);
    $('empty').hidden = !state.loaded || state.enrolments.length > 0;
    const filtered = state.ward || state.team;
    $('empty').textContent = `No patients on the virtual ward${filtered ? ' for this filter' : ''}.`;
    renderSummary();
  }

  function renderSummary() {
    if (!state.loaded) { $('summary').textContent = ''; return; }
    const n = state.enrolments.length;
    const open = state.enrolments.reduce((k, e) => k + e.open_alerts.length, 0);
    const now = serverNow();
    const overdue = state.enrolments.reduce((k, e) => k + e.open_alerts.filter(
      (a) => a.status === 'new' && Date.parse(a.due_at) < now).length, 0);
    const stale = state.enrolments.filter(
      (e) => e.latest && now - Date.parse(e.latest.at) > planIntervalMs(e.plan)).length;
    const parts = [`${n} patient${n === 1 ? '' : 's'}`,
      `${open} open alert${open === 1 ? '' : 's'}`];
    if (overdue) parts.push(`${overdue} overdue`);
    if (stale) parts.push(`${stale} stale score${stale === 1 ? '' : 's'}`);
    const text = parts.join(' · ');
    if ($('summary').textContent !== text) $('summary').textContent = text;
  }

  /* ---------------------------------------------------------------- filters ---------- */

  function fillSelect(select, allLabel, options, value) {
    const list = [...options];
    if (value && !list.some(([code]) => code === value)) list.push([value, value]);
    select.replaceChildren(h('option', { value: '' }, allLabel),
      ...list.map(([code, name]) => h('option', { value: code },
        name === code ? code : `${name} (${code})`)));
    select.value = value;
  }

  function renderFilters() {
    fillSelect($('ward-filter'), 'All wards', state.wardNames, state.ward);
    const teams = new Map(state.teams.map((t) => [t.code, t.name]));
    for (const e of state.enrolments) if (!teams.has(e.team)) teams.set(e.team, e.team);
    fillSelect($('team-filter'), 'All teams', teams, state.team);
  }

  function setFilter(kind, value) {
    state[kind] = value;
    const url = new URL(location.href);
    if (value) url.searchParams.set(kind, value);
    else url.searchParams.delete(kind);
    history.replaceState(null, '', url.pathname + url.search + url.hash);
    caseload.request();
  }

  /** Virtual wards and teams for the filters (the rows show without them). */
  async function loadMeta() {
    try {
      const [sites, wards, teams] = await Promise.all([
        C.api(state.token, '/api/sites'), C.api(state.token, '/api/wards'),
        C.api(state.token, '/api/teams')]);
      const virtual = new Set(sites.filter((s) => s.kind === 'virtual_ward').map((s) => s.code));
      state.wardNames = new Map(wards.filter((w) => virtual.has(w.site)).map((w) => [w.code, w.name]));
      state.teams = teams.filter((t) => t.kind === 'virtual_ward');
      state.needMeta = false;
    } catch (err) {
      if (C.isAuthError(err)) throw err;
    }
  }

  /* ---------------------------------------------------------------- loading ---------- */

  async function loadCaseload() {
    if (state.stopped) return;
    if (state.needMeta) await loadMeta();
    const q = new URLSearchParams();
    if (state.ward) q.set('ward', state.ward);
    if (state.team) q.set('team', state.team);
    const query = q.toString();
    const list = await C.api(state.token, `/api/virtual-ward/caseload${query ? `?${query}` : ''}`);
    if (state.stopped) return;
    state.enrolments = list;
    state.loaded = true;
    state.lastUpdate = new Date();
    state.failingSince = null;
    anchorFromEnrolments(list);
    showError(null);
    renderFilters();
    renderCaseload();
    renderStatus();
  }

  function loadFailed(what) {
    return (err) => {
      if (C.isAuthError(err)) { authFailed(err.message); return false; }
      if (state.stopped) return false;
      if (state.failingSince === null) state.failingSince = Date.now();
      showError(`Could not load ${what}: ${err.message}. Retrying…`);
      renderStatus();
      return true;
    };
  }

  const caseload = C.refresher(loadCaseload, { onError: loadFailed('the caseload') });
  const detail = C.refresher(loadDetail, { onError: detailFailed });
  Alerts.start({
    token: () => state.token,
    onSaved: () => caseload.request(),
    onRefused: () => detail.request(),
    authFailed,
  });
  Rows.start({ selected: () => state.selected, select, wardName });

  /* ---------------------------------------------------------------- detail panel ----- */

  function select(id) {
    if (state.selected === id) return;
    state.selected = id;
    state.enrolment = state.enrolments.find((e) => e.id === id) || null;
    Alerts.reset();
    $('charts').replaceChildren();
    state.chartData = null;
    $('detail-error').hidden = true;
    $('detail').hidden = false;
    document.body.classList.add('has-detail');
    if (state.enrolment) renderDetail();
    Rows.markSelected(id);
    $('detail-title').focus({ preventScroll: true });
    detail.request();
  }

  function closeDetail() {
    const id = state.selected;
    state.selected = null;
    state.enrolment = null;
    $('detail').hidden = true;
    document.body.classList.remove('has-detail');
    Rows.closed(id);
  }

  async function loadDetail() {
    const id = state.selected;
    if (!id || state.stopped) return;
    const enc = encodeURIComponent(id);
    const since = encodeURIComponent(new Date(serverNow() - state.hours * HOUR).toISOString());
    const base = `/api/virtual-ward/enrolments/${enc}`;
    const [enrolment, readings, scores] = await Promise.all([
      C.api(state.token, base),
      C.api(state.token, `${base}/readings?since=${since}`),
      C.api(state.token, `${base}/scores?since=${since}`)]);
    // The panel's alerts: the open ones, and those shown already (kept once resolved).
    const ids = new Set(enrolment.open_alerts.map((a) => a.id));
    if (state.selected === id) for (const aid of Alerts.shownIds()) ids.add(aid);
    const alerts = await Promise.all([...ids].map(
      (aid) => C.api(state.token, `/api/virtual-ward/alerts/${encodeURIComponent(aid)}`)));
    if (state.selected !== id) return;   // another patient was opened meanwhile
    state.enrolment = enrolment;
    for (const a of alerts) {
      // A triage answer that arrived while this load was in flight may be newer: keep it.
      Alerts.offer(a);
      anchorFromAlert(a);
    }
    $('detail-error').hidden = true;
    renderDetail();
    Alerts.render();
    renderCharts(readings, scores);
  }

  function detailFailed(err) {
    if (C.isAuthError(err)) { authFailed(err.message); return false; }
    if (!state.selected || state.stopped) return false;
    $('detail-error').hidden = false;
    $('detail-error').textContent = err instanceof C.ApiError && err.status === 404
      ? `This patient could not be found: ${err.message}`
      : `Could not load this patient: ${err.message}. Retrying…`;
    return !(err instanceof C.ApiError && err.status === 404);
  }

  function renderDetail() {
    const e = state.enrolment;
    $('detail-title').textContent = e.nhs_number ? `NHS ${e.patient}` : `Local ID ${e.patient}`;
    const place = [`${wardName(e.ward)} · ${e.bed}`, `team ${e.team}`,
      `enrolled ${when(Date.parse(e.enrolled_at))}`];
    if (e.ended_at) place.push(`left ${when(Date.parse(e.ended_at))} (${e.end_reason || 'ended'})`);
    $('detail-place').textContent = place.join(' · ');

    const s = e.latest;
    const score = $('detail-score');
    score.dataset.risk = riskOf(s);
    if (!s) {
      score.replaceChildren(news2Badge(null));
    } else {
      const parts = Object.entries(s.parameters).map(([p, pts]) => {
        const v = s.values[p];
        const shown = v === undefined || v === null ? '' : ` ${withUnit(p, v)}`;
        return h('li', { class: `pp p${pts}` }, `${shortName(p)}${shown} `,
          h('strong', {}, `+${pts}`));
      });
      const missing = s.missing.map((p) => h('li', { class: 'pp missing' },
        `${shortName(p)}: ${s.reasons[p] || 'missing'}`));
      score.replaceChildren(
        news2Badge(s),
        h('div', { class: 'score-detail' },
          h('p', { class: 'score-when' }, `Scored ${when(Date.parse(s.at))} · `,
            agoEl(Date.parse(s.at), {
              class: 'ago score-age', 'data-interval': planIntervalMs(e.plan),
              'data-testid': 'detail-age',
            }),
            s.scale === 2 ? ' · SpO₂ scale 2' : ''),
          h('ul', { class: 'score-parts' }, parts, missing)));
    }

    const facts = [
      ['Plan', planText(e.plan)],
      ['Measures', (e.plan.parameters || []).map(shortName).join(', ')],
      ['Oxygen', e.plan.oxygen === 'oxygen' ? 'prescribed home oxygen' : 'air'],
      ['SpO₂ scale', scaleText(e)],
    ];
    const limits = Object.entries(e.thresholds || {}).map(([p, l]) => [shortName(p),
      l.min !== null && l.min !== undefined ? `below ${l.min}` : null,
      l.max !== null && l.max !== undefined ? `above ${l.max}` : null].filter(Boolean).join(' '));
    if (limits.length) facts.push(['Alert limits', limits.join('; ')]);
    facts.push(['Devices', e.devices.length
      ? e.devices.map((d) => (d.battery_pct === null
        ? d.serial : `${d.serial} · battery ${d.battery_pct}%`)).join('; ')
      : 'none linked']);
    $('detail-facts').replaceChildren(...facts.flatMap(([k, v]) => [
      h('dt', {}, k), h('dd', { 'data-fact': k }, v)]));
  }

  /** "Scale 1 (default)", or the scale with who set it and when (a recorded decision). */
  function scaleText(e) {
    const base = e.scale === 2 ? 'Scale 2 (target 88–92%)' : 'Scale 1';
    if (!e.scale_set_by) return `${base} (default)`;
    const at = e.scale_set_at ? ` ${when(Date.parse(e.scale_set_at))}` : '';
    return `${base}, set by ${person(e.scale_set_by)}${at}`;
  }

  /** Draw the open patient's charts (kept, to redraw them at a new width). */
  function renderCharts(readings, scores) {
    state.chartData = { readings, scores };
    Charts.draw($('charts'), readings, scores, { hours: state.hours, enrolment: state.enrolment });
    for (const b of $('range').querySelectorAll('button')) {
      b.setAttribute('aria-pressed', String(Number(b.dataset.hours) === state.hours));
    }
  }

  /* ---------------------------------------------------------------- status ----------- */

  /** Header status, stale banner and "Updated" time; runs every second and on changes. */
  function renderStatus() {
    const el = $('live-status');
    const status = C.liveStatus(state, STALE_AFTER_MS);
    C.showLiveStatus(el, status);
    $('updated').textContent = state.lastUpdate
      ? `Updated ${londonSeconds.format(state.lastUpdate)}` : 'Updated —';
    const stale = status.stale;
    $('stale-banner').hidden = !stale;
    if (stale) {
      $('stale-text').textContent = state.lastUpdate
        ? `this caseload may be out of date (last update ${
          londonTime.format(state.lastUpdate)}). Reconnecting…`
        : 'no caseload has been received yet. Reconnecting…';
    }
    document.body.classList.toggle('is-stale', stale);
  }

  function showError(message) {
    $('error-banner').hidden = !message;
    $('error-banner').textContent = message || '';
  }

  /* ---------------------------------------------------------------- stream ----------- */

  function onFrame(frame) {
    if (frame.type === 'resync') {
      state.needMeta = true;
      caseload.request();
      detail.request();
      return;
    }
    if (frame.type !== 'change') return;
    let event;
    try { event = JSON.parse(frame.data); } catch (_) { caseload.request(); return; }
    const type = String((event && event.type) || '');
    const data = (event && event.data) || {};
    if (type === 'system.loaded' || type === 'teams.loaded') {
      state.needMeta = true;
      caseload.request();
      return;
    }
    if (!type.startsWith('vw.') && !type.startsWith('alert.')) return;
    caseload.request();
    const id = state.selected;
    if (id && (data.enrolment === id
        || (Array.isArray(data.enrolments) && data.enrolments.includes(id)))) {
      detail.request();
    }
  }

  function streamOpened() {
    // Subscribed now: fresh snapshots cover anything missed while away.
    caseload.request();
    detail.request();
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
    caseload.stop();
    detail.stop();
    if (state.live) state.live.stop();
    state.live = null;
  }

  function begin(token) {
    stop();
    state.token = token;
    state.stopped = false;
    state.needMeta = true;
    state.failingSince = null;
    show('main');
    showError(null);
    caseload.start();
    detail.start();
    caseload.request();   // show the caseload even before the stream is up
    if (state.selected) detail.request();
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
    msg.textContent = `Not authorised: ${why}. This page needs a clinician token.`;
    show('auth');
    showError(null);
  }

  function init() {
    const params = new URLSearchParams(location.search);
    state.ward = (params.get('ward') || '').trim();
    state.team = (params.get('team') || '').trim();
    $('ward-filter').addEventListener('change', (ev) => setFilter('ward', ev.target.value));
    $('team-filter').addEventListener('change', (ev) => setFilter('team', ev.target.value));
    $('detail-close').addEventListener('click', closeDetail);
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && state.selected && !ev.target.closest('input, textarea, select')) {
        closeDetail();
      }
    });
    for (const b of $('range').querySelectorAll('button')) {
      b.setAttribute('aria-pressed', String(Number(b.dataset.hours) === state.hours));
      b.addEventListener('click', () => {
        state.hours = Number(b.dataset.hours);
        detail.request();
      });
    }
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (state.selected && state.chartData) {
          renderCharts(state.chartData.readings, state.chartData.scores);
        }
      }, 150);
    });
    C.onWake(state, () => {
      caseload.request();
      detail.request();
    });
    C.signIn(begin, () => show('auth'));
    setInterval(() => { renderStatus(); tick(); }, 1_000);
    setInterval(() => {
      if (state.stopped) return;
      caseload.request();
      detail.request();
    }, POLL_MS);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
