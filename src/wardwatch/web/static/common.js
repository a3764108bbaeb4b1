/*
 * Helpers shared by WardWatch's pages (app.js: the control-centre page; tasks.js: the task
 * page for cleaners and porters). Vanilla ES2020, no build step, no external resources.
 *
 *   h(tag, attrs, ...children)  tiny DOM builder; text is never parsed as HTML
 *   api(token, path, options)   JSON API call with the bearer token; throws ApiError
 *   tokenFromHash()             the token from #token=…, taken out of the address bar at once
 *                               and kept in sessionStorage (this tab only, never in a URL)
 *   SseParser                   incremental text/event-stream parser
 *   LiveStream                  /api/stream read with fetch() (EventSource cannot send an
 *                               Authorization header): reconnects with backoff, resumes from
 *                               Last-Event-ID, and a watchdog reopens a silently dead stream
 *   refresher(load, options)    throttled re-fetch of a snapshot: at most one run a second,
 *                               one in flight, the last request always honoured
 */
'use strict';

window.WardWatchCommon = (() => {
  const TOKEN_KEY = 'wardwatch-token';

  /** Tiny DOM builder: h('td', {class: 'num'}, 'text', childNode). Text is never HTML. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'style') Object.assign(el.style, v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /* ---------------------------------------------------------------- API -------------- */

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  /** The server's own words for a refusal ({"message": …}), else the HTTP status. */
  async function errorMessage(res) {
    try {
      const body = await res.json();
      if (body && body.message) return String(body.message);
    } catch (_) { /* not JSON */ }
    return `HTTP ${res.status}`;
  }

  /** GET (or `method`, with a JSON `body`) an API path; resolves to the parsed JSON. */
  async function api(token, path, { method = 'GET', body } = {}) {
    const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (!res.ok) throw new ApiError(res.status, await errorMessage(res));
    return res.json();
  }

  const isAuthError = (err) => err instanceof ApiError && (err.status === 401 || err.status === 403);

  /* ---------------------------------------------------------------- token ------------ */

  /** A token from #token=…, removed from the address bar at once and kept for this tab. */
  function tokenFromHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    const fromHash = params.get('token');
    if (fromHash !== null) {
      params.delete('token');
      const rest = params.toString();
      history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
      if (fromHash.trim()) {
        sessionStorage.setItem(TOKEN_KEY, fromHash.trim());
        return fromHash.trim();
      }
    }
    return null;
  }

  const savedToken = () => sessionStorage.getItem(TOKEN_KEY);
  const saveToken = (token) => sessionStorage.setItem(TOKEN_KEY, token);
  const forgetToken = () => sessionStorage.removeItem(TOKEN_KEY);

  /**
   * The sign-in every page shares: the token form (#token-form, #token-input, and
   * #auth-message hidden on a new try) and a #token=… link both call begin(token). Opening
   * the demo's …/#token=… link in a tab already showing the page changes only the hash (no
   * reload), so that is listened for too. Starts at once with the link's token or this tab's
   * saved one, else calls noToken().
   */
  function signIn(begin, noToken) {
    const input = document.getElementById('token-input');
    document.getElementById('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      saveToken(token);
      input.value = '';
      const message = document.getElementById('auth-message');
      if (message) message.hidden = true;
      begin(token);
    });
    window.addEventListener('hashchange', () => {
      const token = tokenFromHash();
      if (token) begin(token);
    });
    const token = tokenFromHash() || savedToken();
    if (token) begin(token);
    else noToken();
  }

  /** A page that comes back into view (a phone waking up) reconnects at once rather than
   *  after the backoff, and catches up with refresh(). */
  function onWake(state, refresh) {
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState !== 'visible' || state.stopped) return;
      if (state.live) state.live.retryNow();
      refresh();
    });
  }

  /* ---------------------------------------------------------------- SSE -------------- */

  /**
   * Incremental parser for text/event-stream (WHATWG HTML §9.2.6). Feed it decoded text in
   * any chunking; it calls onEvent({type, data, id}) once per complete frame. Lines may end in
   * CRLF, LF or CR, and a CRLF split across two chunks counts once.
   */
  class SseParser {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.buffer = '';
      this.reset();
    }

    reset() { this.type = ''; this.data = []; this.id = null; }

    push(text) {
      const buf = this.buffer + text;
      const eol = /\r\n|\r|\n/g;
      let start = 0;
      let m;
      while ((m = eol.exec(buf)) !== null) {
        // A lone CR at the very end may be the first half of a CRLF: wait for more text.
        if (m[0] === '\r' && m.index === buf.length - 1) break;
        this.line(buf.slice(start, m.index));
        start = m.index + m[0].length;
      }
      this.buffer = buf.slice(start);
    }

    line(line) {
      if (line === '') { this.dispatch(); return; }
      if (line.startsWith(':')) return;            // comment, e.g. ": keep-alive"
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.type = value;
      else if (field === 'data') this.data.push(value);
      else if (field === 'id' && !value.includes('\0')) this.id = value;
      // "retry" is ignored: reconnection uses our own backoff.
    }

    dispatch() {
      const frame = { type: this.type || 'message', data: this.data.join('\n'), id: this.id };
      const hasContent = this.data.length > 0 || this.type !== '';
      this.reset();
      if (hasContent || frame.id !== null) this.onEvent(frame);
    }
  }

  const BACKOFF_START_MS = 1_000;
  const BACKOFF_MAX_MS = 10_000;
  // The server sends ": keep-alive" every 15 s by default; if nothing at all arrives for this
  // long the connection is assumed dead (e.g. a silently dropped network) and is reopened.
  const WATCHDOG_MS = 45_000;

  /**
   * The live event stream. Callbacks: onOpen() once subscribed (refetch a snapshot then: no
   * change can slip between it and the stream), onFrame(frame) per event, onDown() when the
   * connection is lost (it retries by itself: 1, 2, 4, 8, 10, 10… s), onAuthError(status,
   * message) when the token is refused (the stream then stops).
   * Readable state: connected, everConnected, downSince (Date.now() when lost or first
   * tried; null while connected), lastEventId.
   */
  class LiveStream {
    constructor(token, { onOpen, onFrame, onDown, onAuthError } = {}) {
      this.token = token;
      this.onOpen = onOpen || (() => {});
      this.onFrame = onFrame || (() => {});
      this.onDown = onDown || (() => {});
      this.onAuthError = onAuthError || (() => {});
      this.stopped = true;
      this.connected = false;
      this.everConnected = false;
      this.downSince = null;
      this.lastEventId = null;
      this.backoff = BACKOFF_START_MS;
      this.ctrl = null;
      this.reconnectTimer = null;
    }

    start() {
      this.stopped = false;
      this.downSince = Date.now();
      this.connect();
    }

    stop() {
      this.stopped = true;
      this.connected = false;
      if (this.ctrl) this.ctrl.abort();
      this.ctrl = null;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }

    /** Retry at once (e.g. a phone woken up), rather than after the remaining backoff. */
    retryNow() {
      if (this.stopped || this.connected || this.reconnectTimer === null) return;
      clearTimeout(this.reconnectTimer);
      this.backoff = BACKOFF_START_MS;
      this.connect();
    }

    async connect() {
      this.reconnectTimer = null;
      if (this.stopped) return;
      const ctrl = new AbortController();
      this.ctrl = ctrl;
      let watchdog = null;
      const kick = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => ctrl.abort(), WATCHDOG_MS);
      };
      const headers = { Authorization: `Bearer ${this.token}`, Accept: 'text/event-stream' };
      if (this.lastEventId !== null) headers['Last-Event-ID'] = this.lastEventId;
      try {
        kick();
        const res = await fetch('/api/stream', { headers, cache: 'no-store', signal: ctrl.signal });
        if (res.status === 401 || res.status === 403) {
          const message = await errorMessage(res);
          this.stop();
          this.onAuthError(res.status, message);
          return;
        }
        if (!res.ok || !res.body) throw new Error(`stream: HTTP ${res.status}`);
        this.opened();
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        const parser = new SseParser((frame) => {
          if (frame.id !== null && frame.id !== '') this.lastEventId = frame.id;
          this.onFrame(frame);
        });
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          kick();
          parser.push(decoder.decode(value, { stream: true }));
        }
        parser.push(decoder.decode());
      } catch (_) {
        // Network failure, server gone, or our watchdog/abort: handled below.
      } finally {
        clearTimeout(watchdog);
      }
      if (this.stopped || this.ctrl !== ctrl) return;   // stopped or superseded
      this.lost();
    }

    opened() {
      this.connected = true;
      this.everConnected = true;
      this.downSince = null;
      this.backoff = BACKOFF_START_MS;
      this.onOpen();
    }

    lost() {
      this.connected = false;
      if (this.downSince === null) this.downSince = Date.now();
      const wait = this.backoff;
      this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
      this.reconnectTimer = setTimeout(() => this.connect(), wait);
      this.onDown();
    }
  }

  /* ---------------------------------------------------------------- refresh ---------- */

  /**
   * Throttled refreshing of a snapshot the page shows (live events can arrive in bursts of
   * hundreds; the page needs only the state after them). `request()` asks for a fresh one:
   * the first request after a quiet spell runs `load()` at once, later ones at most once per
   * `minGapMs`; one run is in flight at a time, so answers cannot arrive out of order; a
   * request made during a run is honoured after it, so the last change is never lost.
   * When `load()` throws, `onError(err)` decides: true retries after `retryMs` (a network
   * blip), false waits for the next request (e.g. the token was refused).
   * `stop()` cancels what is pending and ignores requests until `start()`; a run still in
   * flight from before a `stop()` is forgotten when it ends: its error is not reported (a
   * refused old token must not sign out the session that replaced it).
   */
  function refresher(load, { minGapMs = 1_000, retryMs = 3_000, onError = () => true } = {}) {
    let dirty = false;
    let inFlight = false;
    let stopped = false;
    let timer = null;
    let lastRunAt = -Infinity;
    let generation = 0;  // moves on at each stop()

    function schedule(delay = 0) {
      if (timer !== null || inFlight || stopped || !dirty) return;
      const wait = Math.max(delay, lastRunAt + minGapMs - Date.now(), 0);
      timer = setTimeout(run, wait);
    }

    async function run() {
      timer = null;
      if (!dirty || stopped) return;
      dirty = false;
      inFlight = true;
      lastRunAt = Date.now();
      const mine = generation;
      let retryIn = 0;
      try {
        await load();
      } catch (err) {
        if (mine === generation && onError(err)) {
          dirty = true;
          retryIn = retryMs;
        }
      } finally {
        inFlight = false;
      }
      schedule(retryIn);
    }

    return {
      request() { dirty = true; schedule(); },
      stop() {
        stopped = true;
        dirty = false;
        generation += 1;
        clearTimeout(timer);
        timer = null;
      },
      start() { stopped = false; schedule(); },
      get busy() { return inFlight || timer !== null; },
    };
  }

  /**
   * A page's live status from its stream state (`state.live` from LiveStream, `stopped`,
   * `failingSince`): what the header says and whether the figures may no longer be current
   * (the stream down, or fetches failing, for longer than `staleAfterMs`).
   */
  function liveStatus(state, staleAfterMs, offline = 'Not live') {
    const live = state.live || { connected: false, everConnected: false, downSince: null };
    const now = Date.now();
    const downFor = live.downSince === null ? 0 : now - live.downSince;
    let st;
    let text;
    if (state.stopped) { st = 'disconnected'; text = offline; }
    else if (live.connected) { st = 'live'; text = 'Live'; }
    else if (downFor > staleAfterMs) { st = 'disconnected'; text = offline; }
    else if (!live.everConnected) { st = 'connecting'; text = 'Connecting…'; }
    else { st = 'reconnecting'; text = 'Reconnecting…'; }
    const failingFor = state.failingSince === null ? 0 : now - state.failingSince;
    const stale = !state.stopped && (
      (!live.connected && downFor > staleAfterMs) || failingFor > staleAfterMs);
    return { state: st, text, stale };
  }

  /** Show a liveStatus() in the header element (touching the DOM only when it changes). */
  function showLiveStatus(el, status) {
    if (el.dataset.state !== status.state) el.dataset.state = status.state;
    if (el.textContent !== status.text) el.textContent = status.text;
  }

  return {
    h, ApiError, errorMessage, api, isAuthError,
    tokenFromHash, savedToken, saveToken, forgetToken, signIn, onWake,
    SseParser, LiveStream, refresher, liveStatus, showLiveStatus,
  };
})();
