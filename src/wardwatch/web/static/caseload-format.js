/*
 * WardWatch virtual-ward caseload: time on the server's clock, and how times, plans and
 * people are written (Europe/London). Shared by the page's other scripts, which load after
 * it; exposed as window.WardWatchCaseloadFormat.
 *
 * The server's now is counted from its answers (an alert's due time less its minutes left, a
 * score's time plus its age), so ages and countdowns agree with the server even when the demo
 * runs a fast clock. Ages and countdowns are elements that tick(): caseload.js calls it every
 * second.
 */
'use strict';

window.WardWatchCaseloadFormat = (() => {
  const { h } = window.WardWatchCommon;
  const REANCHOR_MS = 10_000;        // re-read the server's clock only if it moved this much
  const HOUR = 3_600_000;

  const londonTime = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  });
  const londonSeconds = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London', hour: '2-digit', minute: '2-digit', second: '2-digit',
    hourCycle: 'h23',
  });
  const londonDay = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London', weekday: 'short', day: 'numeric', month: 'short',
  });
  const londonParts = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  });

  let anchor = null;   // {server, local}: the server's clock, counted from its answers

  function serverNow() {
    return anchor ? anchor.server + (Date.now() - anchor.local) : Date.now();
  }

  /** Take the server's now from an answer (ages and time left were measured at it). */
  function anchorAt(estimate) {
    if (!Number.isFinite(estimate)) return;
    if (anchor === null || Math.abs(estimate - serverNow()) > REANCHOR_MS) {
      anchor = { server: estimate, local: Date.now() };
    }
  }

  function anchorFromAlert(a) {
    anchorAt(Date.parse(a.due_at) - a.minutes_left * 60_000);
  }

  function anchorFromEnrolments(list) {
    for (const e of list) {
      if (e.open_alerts.length) { anchorFromAlert(e.open_alerts[0]); return; }
      if (e.latest) { anchorAt(Date.parse(e.latest.at) + e.latest.age_minutes * 60_000); return; }
    }
  }

  /** 0 → "under a minute"; 12 → "12 min"; 75 → "1 h 15 min"; 3000 → "2 d 2 h". */
  function span(minutes) {
    const m = Math.max(0, Math.floor(minutes));
    if (m < 1) return 'under a minute';
    if (m < 60) return `${m} min`;
    if (m < 24 * 60) {
      const rest = m % 60;
      return `${Math.floor(m / 60)} h${rest ? ` ${rest} min` : ''}`;
    }
    const hours = Math.floor(m / 60) % 24;
    return `${Math.floor(m / 1440)} d${hours ? ` ${hours} h` : ''}`;
  }

  function ago(ms) {
    const minutes = (serverNow() - ms) / 60_000;
    return minutes < 1 ? 'just now' : `${span(minutes)} ago`;
  }

  /** 29:41 under an hour (it ticks), "3 h 59 min" above. */
  function clockSpan(ms) {
    const s = Math.floor(Math.abs(ms) / 1000);
    if (s >= 3600) return span(s / 60);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  }

  function sameLondonDay(a, b) {
    return londonDay.format(new Date(a)) === londonDay.format(new Date(b));
  }

  /** "10:42" today, "Tue 3 Dec 10:42" another day. */
  function when(ms) {
    const d = new Date(ms);
    return sameLondonDay(ms, serverNow())
      ? londonTime.format(d) : `${londonDay.format(d)} ${londonTime.format(d)}`;
  }

  /** How often the plan expects readings (as the server's rules.interval). */
  function planIntervalMs(plan) {
    if (plan && plan.mode === 'continuous') return (Number(plan.interval_minutes) || 5) * 60_000;
    return (24 / (Number(plan && plan.times_per_day) || 2)) * HOUR;
  }

  function planText(plan) {
    if (plan.mode === 'continuous') {
      return `Continuous: a reading every ${span(planIntervalMs(plan) / 60_000)}`;
    }
    const n = Number(plan.times_per_day) || 2;
    const times = n === 1 ? 'once' : n === 2 ? 'twice' : `${n} times`;
    return `Spot checks ${times} a day (every ${span(planIntervalMs(plan) / 60_000)})`;
  }

  const person = (label) => (label ? String(label).replace(/^[^:]*:/, '') : 'someone');

  /** "12 min ago", and ⚠ stale when older than the patient's monitoring interval. */
  function updateAgo(el) {
    const at = Number(el.dataset.at);
    const interval = Number(el.dataset.interval);
    const stale = Number.isFinite(interval) && interval > 0 && serverNow() - at > interval;
    const text = `${el.dataset.prefix || ''}${ago(at)}`;
    if (el.classList.contains('score-age')) {
      el.classList.toggle('is-stale', stale);
      const shown = stale ? `⚠ ${text} · stale` : text;
      if (el.textContent !== shown) el.textContent = shown;
      const row = el.closest('tr');
      if (row) row.dataset.stale = String(stale);
    } else if (el.textContent !== text) {
      el.textContent = text;
    }
  }

  /** Time left to respond; negative = overdue, in red. */
  function updateCountdown(el) {
    const left = Number(el.dataset.due) - serverNow();
    const overdue = left < 0;
    const text = overdue ? `Overdue ${clockSpan(left)}` : `${clockSpan(left)} left`;
    el.classList.toggle('is-overdue', overdue);
    el.dataset.overdue = String(overdue);
    if (el.textContent !== text) el.textContent = text;
  }

  function countdown(a) {
    const el = h('span', {
      class: 'countdown', 'data-due': Date.parse(a.due_at), 'data-testid': 'countdown',
      title: `Respond by ${when(Date.parse(a.due_at))}`,
    });
    updateCountdown(el);
    return el;
  }

  function agoEl(ms, attrs = {}) {
    const el = h('span', { class: 'ago', 'data-at': ms, ...attrs });
    updateAgo(el);
    return el;
  }

  /** Bring every age and countdown on the page up to the server's now. */
  function tick() {
    for (const el of document.querySelectorAll('[data-due]')) updateCountdown(el);
    for (const el of document.querySelectorAll('[data-at]')) updateAgo(el);
  }

  return {
    HOUR, londonTime, londonSeconds, londonDay, londonParts,
    serverNow, anchorFromAlert, anchorFromEnrolments,
    span, when, planIntervalMs, planText, person, countdown, agoEl, tick,
  };
})();
