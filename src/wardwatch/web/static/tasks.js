/*
 * WardWatch task page: a team's queue for a cleaner or porter on a phone.
 *
 * Opened as /tasks?team=ACU1-housekeeping#token=…; without a team it offers a picker (the
 * choice is remembered on the phone). Vanilla ES2020, no build step, no external resources;
 * the API calls, the token and the live stream come from common.js.
 *
 * Flow: token → team → open the stream → on connect, on every `task.*` event for this team
 * (throttled to once a second), on `resync`, when the phone wakes and every minute anyway,
 * refetch GET /api/tasks?team=… and update the cards in place (a button is never replaced
 * under a finger). A tap POSTs the step with the task's version: on success the card changes
 * at once; when refused (409/403) the server's message is shown and the queue refetched.
 */
'use strict';

(() => {
  const C = window.WardWatchCommon;
  const { h } = C;
  // Tests may shorten the stale threshold: window.WardWatchConfig = {staleAfterMs: …}.
  const STALE_AFTER_MS = Number((window.WardWatchConfig || {}).staleAfterMs) || 30_000;
  const REFRESH_MIN_GAP_MS = 1_000;   // at most one queue fetch a second
  const REFRESH_RETRY_MS = 3_000;     // after a failed fetch (not auth)
  const POLL_MS = 60_000;             // refetch this often even if no event arrives
  const TICK_MS = 15_000;             // redraw "waiting" and "time left"
  const SETTLE_MS = 500;              // a button that changed step ignores taps this long
  const CONFIRM_MS = 5_000;           // the shortcut "Mark done" waits this long for tap two
  const TOAST_MS = { ok: 4_000, error: 9_000 };
  const TEAM_KEY = 'wardwatch-team';
  const OPEN = new Set(['requested', 'accepted', 'in_progress']);

  const PRIORITY_LABEL = { clean_next: 'Clean next', urgent: 'Urgent', routine: 'Routine' };
  const TEAM_KIND_ORDER = ['housekeeping', 'porters', 'other'];
  const TEAM_KIND_LABEL = { housekeeping: 'Housekeeping', porters: 'Porters', other: 'Other' };
  const ESCALATED_TO = { 1: 'Supervisor told', 2: 'Control centre told' };
  /** The one next step for each status: [action, button label]. */
  const NEXT = {
    requested: ['accept', 'Accept'],
    accepted: ['start', 'Start'],
    in_progress: ['done', 'Done'],
  };

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
    stopped: true,          // no token, no team chosen, or the token was refused
    team: null,             // team code
    teamInfo: null,         // its row from /api/teams, once known
    wards: new Map(),       // ward code → name, for the team's site
    needMeta: true,         // team and ward names still to fetch
    tasks: [],              // the queue on screen, in server order
    newer: new Map(),       // task id → TaskRead from our own taps, newer than a snapshot
    pending: new Set(),     // task ids with a tap in flight
    anchor: null,           // {server, local}: the server's clock (it may run simulated time)
    loaded: false,
    lastUpdate: null,
    live: null,             // LiveStream
    dirty: false,
    inFlight: false,
    refreshTimer: null,
    lastFetchAt: 0,
    failingSince: null,
  };
  const cards = new Map();  // task id → {li, parts…, task}
  const $ = (id) => document.getElementById(id);

  /* ---------------------------------------------------------------- time ------------- */

  /** The server's now: its clock may be simulated (the demo), so we count from its answers. */
  function serverNow() {
    return state.anchor ? state.anchor.server + (Date.now() - state.anchor.local) : Date.now();
  }

  /** An open task's waiting_minutes was measured at the server's now: set the anchor from it. */
  function anchorFrom(tasks) {
    const open = tasks.find((t) => OPEN.has(t.status));
    if (!open) return;
    const created = Date.parse(open.created_at);
    if (Number.isNaN(created)) return;
    state.anchor = { server: created + open.waiting_minutes * 60_000, local: Date.now() };
  }

  /** 0 → "under a minute", 5 → "5 min", 75 → "1 h 15 min". */
  function duration(minutes) {
    const m = Math.max(0, Math.floor(minutes));
    if (m < 1) return 'under a minute';
    if (m < 60) return `${m} min`;
    const rest = m % 60;
    return `${Math.floor(m / 60)} h${rest ? ` ${rest} min` : ''}`;
  }

  const clockTime = (ms) => londonTime.format(new Date(ms));

  /** Who, from an actor label like "housekeeping:ann". */
  const person = (label) => (label ? String(label).replace(/^[^:]*:/, '') : 'someone');

  /* ---------------------------------------------------------------- cards ------------ */

  function makeCard(id) {
    const card = {
      tags: h('div', { class: 'task-tags' }),
      title: h('h3', { class: 'task-title' }),
      where: h('p', { class: 'task-where' }),
      what: h('p', { class: 'task-what' }),
      waited: h('span', { class: 'task-waited' }),
      deadline: h('span', { class: 'task-deadline' }),
      status: h('p', { class: 'task-status' }),
      primary: h('button', { class: 'btn btn-primary', type: 'button', 'data-role': 'primary' }),
      secondary: h('button', { class: 'btn btn-secondary', type: 'button', 'data-role': 'secondary' }),
      task: null,
      action: null,
      settling: false,
      settleTimer: null,
      confirmTimer: null,
    };
    card.li = h('li', { class: 'task', 'data-task-id': id, 'data-testid': 'task' },
      card.tags, card.title, card.where, card.what,
      h('p', { class: 'task-times' }, card.waited, card.deadline),
      card.status,
      h('div', { class: 'task-actions' }, card.primary, card.secondary));
    card.primary.addEventListener('click', () => {
      if (card.action && !card.settling) act(card, card.action);
    });
    card.secondary.addEventListener('click', () => confirmDone(card));
    return card;
  }

  /** Update a card in place from a task, so its buttons stay under the finger. */
  function updateCard(card, t) {
    const prevAction = card.action;
    card.task = t;
    const li = card.li;
    li.dataset.status = t.status;
    li.dataset.priority = t.priority;
    li.dataset.kind = t.kind;
    li.dataset.type = t.type;
    li.dataset.version = String(t.version);

    const tags = [h('span', { class: `tag tag-${t.priority.replace('_', '-')}` },
      PRIORITY_LABEL[t.priority] || t.priority)];
    if (t.kind === 'cleaning' && t.type === 'infection') {
      tags.push(h('span', { class: 'tag tag-infection' },
        h('span', { 'aria-hidden': 'true' }, '☣ '), 'Infection clean'));
    }
    if (t.escalation_level > 0) {
      tags.push(h('span', { class: 'tag tag-escalated' },
        h('span', { 'aria-hidden': 'true' }, '▲ '),
        ESCALATED_TO[t.escalation_level] || `Escalated (level ${t.escalation_level})`));
    }
    card.tags.replaceChildren(...tags);

    // Where: the ward's name and code (a code wraps as a whole, never at its hyphen).
    const where = [];
    if (t.ward) {
      const wardName = state.wards.get(t.ward);
      if (wardName) where.push(wardName, ' · ');
      where.push(h('span', { class: 'code' }, t.ward));
    }
    if (t.kind === 'cleaning') {
      card.title.textContent = t.bed ? `Bed ${t.bed}` : t.description;
      card.what.textContent = `${t.type === 'infection' ? 'Infection' : 'Standard'} clean · about ${duration(t.expected_minutes)}`;
    } else {
      card.title.textContent = t.description;
      if (t.bed && !t.description.includes(t.bed)) {
        where.push(where.length ? ' · ' : '', h('span', { class: 'code' }, `bed ${t.bed}`));
      }
      card.what.textContent = '';
    }
    card.where.replaceChildren(...where);
    card.where.hidden = !card.where.textContent;
    card.what.hidden = !card.what.textContent;

    if (t.status === 'accepted') {
      card.status.textContent = `Accepted by ${person(t.accepted_by)}`;
    } else if (t.status === 'in_progress') {
      const at = Date.parse(t.started_at);
      card.status.textContent = `Started by ${person(t.started_by)}${Number.isNaN(at) ? '' : ` at ${clockTime(at)}`}`;
    } else {
      card.status.textContent = '';   // new: the Accept button says it all
    }
    card.status.hidden = !card.status.textContent;
    updateTimes(card);

    // One primary button: the next step. A cleaner who finds the bed clean already (or
    // cleaned it without tapping) may mark it done at once, with a second tap to confirm.
    const [action, label] = NEXT[t.status] || [null, ''];
    card.action = action;
    const what = t.kind === 'cleaning' && t.bed ? `bed ${t.bed}` : t.description;
    // The visible word, then which task, for a screen reader (WCAG: label in name).
    card.primary.textContent = label;
    card.primary.setAttribute('aria-label', `${label}: ${what}`);
    card.primary.dataset.action = action || '';
    card.primary.classList.toggle('is-done', action === 'done');
    card.primary.hidden = !action;
    const shortcut = t.kind === 'cleaning' && (t.status === 'requested' || t.status === 'accepted');
    card.secondary.hidden = !shortcut;
    if (!shortcut || prevAction !== action) resetConfirm(card);
    if (prevAction !== null && prevAction !== action) {
      // The button under the finger just changed meaning: ignore a double tap.
      card.settling = true;
      clearTimeout(card.settleTimer);
      card.settleTimer = setTimeout(() => { card.settling = false; syncButtons(card); }, SETTLE_MS);
    }
    syncButtons(card);
  }

  function updateTimes(card) {
    const t = card.task;
    const now = serverNow();
    const created = Date.parse(t.created_at);
    card.waited.textContent = `Waiting ${duration((now - created) / 60_000)}`;
    const accepting = t.status === 'requested';
    const due = Date.parse(accepting ? t.accept_by : t.finish_by);
    const verb = accepting ? 'accept' : 'finish';
    const overdue = Boolean(t.overdue) || now >= due;
    card.li.dataset.overdue = String(overdue);
    card.deadline.classList.toggle('is-overdue', overdue);
    if (overdue) {
      card.deadline.replaceChildren(h('strong', {}, 'OVERDUE'),
        ` · ${verb} was due ${duration((now - due) / 60_000)} ago`);
    } else {
      const left = Math.ceil((due - now) / 60_000);
      card.deadline.textContent = `${verb === 'accept' ? 'Accept' : 'Finish'} within ${duration(Math.max(left, 1))}`;
    }
  }

  function syncButtons(card) {
    const busy = state.pending.has(card.li.dataset.taskId);
    card.primary.disabled = busy || card.settling;
    card.secondary.disabled = busy || card.settling;
    card.li.setAttribute('aria-busy', String(busy));
  }

  function resetConfirm(card) {
    clearTimeout(card.confirmTimer);
    card.confirmTimer = null;
    card.secondary.classList.remove('is-confirm');
    const t = card.task;
    card.secondary.textContent = 'Already clean? Mark done';
    card.secondary.setAttribute('aria-label',
      `Already clean? Mark done${t && t.bed ? `: bed ${t.bed}` : ''}`);
  }

  /** The shortcut to done: the first tap asks, a second within a few seconds does it. */
  function confirmDone(card) {
    if (card.settling || state.pending.has(card.task.id)) return;
    if (card.confirmTimer !== null) {
      resetConfirm(card);
      act(card, 'done');
      return;
    }
    card.secondary.classList.add('is-confirm');
    card.secondary.textContent = 'Tap again: the bed is clean';
    card.secondary.setAttribute('aria-label', card.secondary.textContent);
    card.confirmTimer = setTimeout(() => resetConfirm(card), CONFIRM_MS);
  }

  /** Draw the queue: reuse each task's card, move only what changed place. */
  function renderQueue() {
    const list = $('queue');
    const seen = new Set();
    let prev = null;
    for (const t of state.tasks) {
      let card = cards.get(t.id);
      if (!card) {
        card = makeCard(t.id);
        cards.set(t.id, card);
      }
      updateCard(card, t);
      seen.add(t.id);
      const want = prev ? prev.nextSibling : list.firstChild;
      if (card.li !== want) list.insertBefore(card.li, want);
      prev = card.li;
    }
    for (const [id, card] of cards) {
      if (seen.has(id)) continue;
      const hadFocus = card.li.contains(document.activeElement);
      clearTimeout(card.confirmTimer);
      card.li.remove();
      cards.delete(id);
      if (hadFocus) $('queue-title').focus();
    }
    $('empty').hidden = !state.loaded || state.tasks.length > 0;
    $('unknown-team').hidden = Boolean(state.teamInfo);
    $('unknown-team-code').textContent = state.team || '';
    renderCount();
  }

  function renderCount() {
    const n = state.tasks.length;
    const late = [...cards.values()].filter((c) => c.li.dataset.overdue === 'true').length;
    $('queue-count').textContent = state.loaded
      ? `${n} task${n === 1 ? '' : 's'}${late ? ` · ${late} overdue` : ''}` : '';
  }

  function tick() {
    for (const card of cards.values()) updateTimes(card);
    renderCount();
  }

  function renderTeam() {
    const info = state.teamInfo;
    const name = info ? info.name : state.team;
    $('team-name').textContent = name || 'Tasks';
    document.title = name ? `${name} · Tasks · WardWatch` : 'Tasks · WardWatch';
  }

  /* ---------------------------------------------------------------- status ----------- */

  /** Header status, stale banner and "Updated" time; runs every second and on changes. */
  function renderStatus() {
    const el = $('live-status');
    const status = C.liveStatus(state, STALE_AFTER_MS);
    C.showLiveStatus(el, status);
    el.hidden = !state.team || $('queue-view').hidden;

    $('updated').textContent = state.lastUpdate
      ? `Updated ${londonSeconds.format(state.lastUpdate)}` : 'Updated —';
    const stale = status.stale;
    $('stale-banner').hidden = !stale;
    if (stale) {
      $('stale-text').textContent = state.lastUpdate
        ? `this list may be out of date (last update ${londonTime.format(state.lastUpdate)}). Reconnecting…`
        : 'no tasks have been received yet. Reconnecting…';
    }
    document.body.classList.toggle('is-stale', stale);
  }

  function showError(message) {
    $('error-banner').hidden = !message;
    $('error-banner').textContent = message || '';
  }

  let toastTimer = null;
  /** A message near the thumb: `title` in bold (optional), then the text. */
  function toast(message, kind = 'ok', title = null) {
    const el = $('toast');
    clearTimeout(toastTimer);
    el.dataset.kind = kind;
    el.replaceChildren(...(title ? [h('strong', { class: 'toast-title' }, title)] : []),
      h('span', { class: 'toast-text', 'data-testid': 'toast-text' }, message));
    el.classList.add('is-shown');
    toastTimer = setTimeout(() => {
      el.classList.remove('is-shown');
      el.textContent = '';
    }, TOAST_MS[kind] || TOAST_MS.ok);
  }

  /* ---------------------------------------------------------------- refresh ---------- */

  /**
   * Ask for a fresh queue. Throttled like the control-centre page: one fetch at once after
   * a quiet spell, then at most one a second, the last request always honoured; one fetch in
   * flight at a time, so answers cannot arrive out of order.
   */
  function requestRefresh({ meta = false } = {}) {
    state.dirty = true;
    if (meta) state.needMeta = true;
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
    const team = state.team;
    let retryIn = 0;
    try {
      if (state.needMeta) await loadMeta(team);
      const tasks = await C.api(state.token, `/api/tasks?team=${encodeURIComponent(team)}`);
      if (state.stopped || state.team !== team) return;
      applySnapshot(tasks);
      state.loaded = true;
      state.lastUpdate = new Date();
      state.failingSince = null;
      showError(null);
      renderQueue();
    } catch (err) {
      if (err instanceof C.ApiError && err.status === 401) { authFailed(err.message); return; }
      if (state.failingSince === null) state.failingSince = Date.now();
      showError(`Could not load the tasks: ${err.message}. Retrying…`);
      state.dirty = true;
      retryIn = REFRESH_RETRY_MS;
    } finally {
      state.inFlight = false;
      renderStatus();
    }
    if (state.dirty && !state.stopped && state.refreshTimer === null) {
      const wait = Math.max(retryIn, state.lastFetchAt + REFRESH_MIN_GAP_MS - Date.now(), 0);
      state.refreshTimer = setTimeout(runRefresh, wait);
    }
  }

  /** The team's name and its site's ward names (nice to have: tasks show without them). */
  async function loadMeta(team) {
    const teams = await C.api(state.token, '/api/teams');
    state.teamInfo = teams.find((t) => t.code === team) || null;
    renderTeam();
    if (state.teamInfo && state.teamInfo.site) {
      try {
        const wards = await C.api(state.token,
          `/api/wards?site=${encodeURIComponent(state.teamInfo.site)}`);
        state.wards = new Map(wards.map((w) => [w.code, w.name]));
      } catch (err) {
        if (err instanceof C.ApiError && err.status === 401) throw err;
      }
    }
    state.needMeta = false;
  }

  /**
   * Take a snapshot, but keep what our own taps already know to be newer (a snapshot fetched
   * just before a tap's answer must not bring back the old step, or a finished task).
   */
  function applySnapshot(tasks) {
    const out = [];
    for (const t of tasks) {
      const mine = state.newer.get(t.id);
      if (mine && mine.version > t.version) {
        if (OPEN.has(mine.status)) out.push(mine);
      } else {
        state.newer.delete(t.id);
        out.push(t);
      }
    }
    const listed = new Set(tasks.map((t) => t.id));
    for (const id of state.newer.keys()) if (!listed.has(id)) state.newer.delete(id);
    anchorFrom(tasks);
    state.tasks = out;
  }

  /* ---------------------------------------------------------------- taps ------------- */

  const PAST = { accept: 'accepted', start: 'started', done: 'done' };
  const DONE_MESSAGE = {
    cleaning: (t) => `Done: bed ${t.bed} is ready for the next patient`,
    transfer: (t) => `Done: patient taken to bed ${t.bed}`,
  };

  async function act(card, action) {
    const task = card.task;
    if (state.pending.has(task.id)) return;
    state.pending.add(task.id);
    syncButtons(card);
    const label = task.kind === 'cleaning' && task.bed ? `bed ${task.bed}` : task.description;
    try {
      const updated = await C.api(state.token,
        `/api/tasks/${encodeURIComponent(task.id)}/${action}`,
        { method: 'POST', body: { version: task.version } });
      state.newer.set(updated.id, updated);
      const i = state.tasks.findIndex((t) => t.id === updated.id);
      if (OPEN.has(updated.status)) {
        if (i >= 0) state.tasks[i] = updated;
        anchorFrom([updated]);
      } else if (i >= 0) {
        state.tasks.splice(i, 1);
      }
      if (updated.status === 'done') {
        toast((DONE_MESSAGE[updated.kind] && updated.bed)
          ? DONE_MESSAGE[updated.kind](updated) : `Done: ${label}`);
      } else {
        toast(`${updated.status === 'accepted' ? 'Accepted' : 'Started'}: ${label}`);
      }
      state.pending.delete(task.id);
      renderQueue();
    } catch (err) {
      state.pending.delete(task.id);
      if (cards.get(task.id) === card) syncButtons(card);
      if (err instanceof C.ApiError) {
        if (err.status === 401) { authFailed(err.message); return; }
        // Refused (done or cancelled by someone else, changed since, not your kind of task):
        // the server says why; the queue is refetched to show how things are now.
        toast(err.message, 'error', `Not ${PAST[action]}: ${label}`);
        requestRefresh();
      } else {
        toast('Could not reach WardWatch: check your signal, then tap again.', 'error',
          `Not ${PAST[action]}: ${label}`);
      }
    }
  }

  /* ---------------------------------------------------------------- streams ---------- */

  function onFrame(frame) {
    if (frame.type === 'resync') { requestRefresh({ meta: true }); return; }
    if (frame.type !== 'change') return;
    let event;
    try { event = JSON.parse(frame.data); } catch (_) { requestRefresh(); return; }
    const type = String((event && event.type) || '');
    if (type === 'teams.loaded') requestRefresh({ meta: true });
    else if (type.startsWith('task.') && event.data && event.data.team === state.team) {
      requestRefresh({ meta: !state.teamInfo });   // a default team is made with its first task
    }
  }

  function streamOpened() {
    // Subscribed now: a fresh queue covers anything missed while away.
    requestRefresh();
    renderStatus();
  }

  /* ---------------------------------------------------------------- views ------------ */

  function show(view) {
    $('auth-panel').hidden = view !== 'auth';
    $('team-picker').hidden = view !== 'picker';
    $('queue-view').hidden = view !== 'queue';
    renderStatus();
  }

  function startQueue(team) {
    stopQueue();
    state.team = team;
    state.teamInfo = null;
    state.wards = new Map();
    state.needMeta = true;
    state.loaded = false;
    state.tasks = [];
    state.newer.clear();
    state.lastUpdate = null;
    state.failingSince = null;
    state.stopped = false;
    renderQueue();
    renderTeam();
    show('queue');
    showError(null);
    requestRefresh({ meta: true });   // show the queue even before the stream is up
    state.live = new C.LiveStream(state.token, {
      onOpen: streamOpened,
      onFrame,
      onDown: renderStatus,
      onAuthError: (_status, message) => authFailed(message),
    });
    state.live.start();
    renderStatus();
  }

  function stopQueue() {
    state.stopped = true;
    if (state.live) state.live.stop();
    state.live = null;
    clearTimeout(state.refreshTimer);
    state.refreshTimer = null;
    state.dirty = false;
  }

  function chooseTeam(code) {
    localStorage.setItem(TEAM_KEY, code);
    const url = new URL(location.href);
    url.searchParams.set('team', code);
    history.replaceState(null, '', url.pathname + url.search + url.hash);
    startQueue(code);
  }

  async function showPicker() {
    stopQueue();
    state.team = null;
    renderTeam();
    $('queue-count').textContent = '';
    show('picker');
    showError(null);
    let teams;
    try {
      teams = await C.api(state.token, '/api/teams');
    } catch (err) {
      if (err instanceof C.ApiError && err.status === 401) { authFailed(err.message); return; }
      showError(`Could not load the teams: ${err.message}. Reload to try again.`);
      return;
    }
    const rank = (k) => { const i = TEAM_KIND_ORDER.indexOf(k); return i < 0 ? 9 : i; };
    teams.sort((a, b) => (a.site || '').localeCompare(b.site || '')
      || rank(a.kind) - rank(b.kind) || a.code.localeCompare(b.code));
    const remembered = localStorage.getItem(TEAM_KEY);
    $('team-list').replaceChildren(...teams.map((t) => {
      const button = h('button', {
        class: 'btn team-button', type: 'button', 'data-team': t.code,
        'aria-current': t.code === remembered ? 'true' : null,
      },
      h('span', { class: 'team-button-name' }, t.name),
      h('span', { class: 'team-button-meta' },
        [t.site, TEAM_KIND_LABEL[t.kind] || t.kind].filter(Boolean).join(' · '), ' · ',
        h('span', { class: 'code' }, t.code)));
      button.addEventListener('click', () => chooseTeam(t.code));
      return h('li', {}, button);
    }));
    $('no-teams').hidden = teams.length > 0;
  }

  /* ---------------------------------------------------------------- sign-in ---------- */

  function begin(token) {
    state.token = token;
    const fromUrl = (new URLSearchParams(location.search).get('team') || '').trim();
    const team = fromUrl || localStorage.getItem(TEAM_KEY);
    if (team) chooseTeam(team);
    else showPicker();
  }

  function authFailed(message) {
    stopQueue();
    state.token = null;
    C.forgetToken();
    const msg = $('auth-message');
    msg.hidden = false;
    msg.textContent = `Not authorised: ${message || 'this link was not recognised or has been revoked'}. Ask your supervisor for a new link.`;
    show('auth');
    showError(null);
  }

  function init() {
    $('change-team').addEventListener('click', showPicker);
    C.onWake(state, () => requestRefresh());
    C.signIn(begin, () => show('auth'));
    setInterval(renderStatus, 1_000);
    setInterval(tick, TICK_MS);
    setInterval(() => { if (!state.stopped) requestRefresh(); }, POLL_MS);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
