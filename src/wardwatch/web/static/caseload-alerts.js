/*
 * WardWatch virtual-ward caseload: alerts. A chip per open alert in the caseload rows, and
 * the open patient's alert cards with the triage workflow (acknowledge, record what was done,
 * resolve; notes at any step). Triage buttons POST the step; the answer updates the card at
 * once, a refusal shows the server's reason on it. Cards are updated in place, so an input
 * being typed into is never redrawn. Loaded after caseload-format.js and before caseload.js;
 * exposed as window.WardWatchCaseloadAlerts (one panel per page: start() links it to the page).
 */
'use strict';

window.WardWatchCaseloadAlerts = (() => {
  const C = window.WardWatchCommon;
  const { h } = C;
  const { anchorFromAlert, countdown, person, when } = window.WardWatchCaseloadFormat;
  const $ = (id) => document.getElementById(id);

  const SEVERITY_LABEL = { emergency: 'Emergency', urgent: 'Urgent', routine: 'Routine' };
  const STATUS_LABEL = {
    new: 'New', acknowledged: 'Acknowledged', actioned: 'Actioned', resolved: 'Resolved',
  };
  const SEVERITY_RANK = { emergency: 3, urgent: 2, routine: 1 };
  const ACTIONS = [
    ['called_patient', 'Called patient'],
    ['home_visit', 'Home visit'],
    ['escalated_hospital', 'Escalated to hospital'],
    ['escalated_999', 'Escalated to 999'],
    ['no_action', 'No action (reason required)'],
  ];
  const ACTION_LABEL = {
    called_patient: 'called patient', home_visit: 'home visit',
    escalated_hospital: 'escalated to hospital', escalated_999: 'escalated to 999',
    no_action: 'no action',
  };
  const HISTORY_LABEL = {
    raised: 'Raised', acknowledged: 'Acknowledged', actioned: 'Action recorded', note: 'Note',
    resolved: 'Resolved', upgraded: 'Upgraded', escalated: 'Escalated',
  };
  const ESCALATED_TO = { 1: 'supervisor told', 2: 'control centre told' };
  // Alerts about the data rather than the patient: they may be resolved without an action.
  const RESOLVE_WITHOUT_ACTION = new Set(['missed_reading', 'stale_data', 'battery_low']);
  const STEP_DONE = {
    acknowledge: 'acknowledged', action: 'recorded', resolve: 'resolved', notes: 'added',
  };

  let page = null;               // the page's hooks, from start()
  let alerts = new Map();        // alert id → AlertRead shown in the panel (kept once resolved)
  const pending = new Set();     // alert ids with a triage POST in flight
  const cards = new Map();       // alert id → card parts

  /**
   * Link the panel to the page: `token()` the bearer token; `onSaved()` after a step was
   * stored (refresh the caseload); `onRefused()` after one was not (reload the panel, someone
   * else may have moved the alert on); `authFailed(message)` when the token is refused.
   */
  function start(hooks) {
    page = hooks;
  }

  /** Another patient was opened: no cards until their alerts are loaded. */
  function reset() {
    alerts = new Map();
    for (const card of cards.values()) card.el.remove();
    cards.clear();
  }

  /** The ids of the alerts shown (reloaded with the open ones, so resolved ones stay). */
  function shownIds() {
    return alerts.keys();
  }

  /** Show `a` unless the one shown is newer (a triage answer may beat a load in flight). */
  function offer(a) {
    if (isNewer(a, alerts.get(a.id))) alerts.set(a.id, a);
  }

  /** An alert's row version counts its changes; a note adds history without one. */
  function isNewer(a, known) {
    return !known || a.version > known.version
      || (a.version === known.version && a.notes.length >= known.notes.length);
  }

  /** The server's words, without the empty field name a whole-body check leaves (": …"). */
  const cleanMessage = (msg) => String(msg || '').replace(/^[\s:]+/, '');

  /** An open alert in its row: a new one counts down; an answered one says who or what. */
  function alertChip(a) {
    let progress;
    if (a.status === 'new') progress = countdown(a);
    else if (a.status === 'acknowledged') {
      progress = h('span', { class: 'alert-state' }, `Acknowledged by ${person(a.acknowledged_by)}`);
    } else {
      progress = h('span', { class: 'alert-state' }, `Actioned: ${ACTION_LABEL[a.action] || a.action}`);
    }
    return h('li', {
      class: 'alert-chip', 'data-severity': a.severity, 'data-status': a.status,
      'data-alert-id': a.id, 'data-testid': 'alert-chip',
    },
    h('span', { class: `sev sev-${a.severity}` }, SEVERITY_LABEL[a.severity] || a.severity),
    progress,
    a.level > 0 ? escalated(a.level) : null,
    h('span', { class: 'alert-summary' }, a.summary));
  }

  function escalated(level) {
    return h('span', { class: 'escalated' },
      `▲ ${ESCALATED_TO[level] || `escalated (level ${level})`}`);
  }

  function makeAlertCard(id) {
    const name = `action-${id}`;
    const card = {
      head: h('header', { class: 'alert-head' }),
      meta: h('p', { class: 'alert-meta' }),
      outcome: h('p', { class: 'alert-outcome', 'data-testid': 'alert-outcome' }),
      ack: h('button', { class: 'btn btn-primary', type: 'button', 'data-step': 'acknowledge' },
        'Acknowledge'),
      choices: ACTIONS.map(([value, label]) => h('label', { class: 'choice' },
        h('input', { type: 'radio', name, value }), ` ${label}`)),
      reason: h('input', {
        type: 'text', class: 'text-input', maxlength: '500', 'aria-label': 'Reason or details',
        placeholder: 'Reason or details (required for no action)', 'data-field': 'reason',
      }),
      record: h('button', { class: 'btn btn-primary', type: 'button', 'data-step': 'action' },
        'Record action'),
      note: h('input', {
        type: 'text', class: 'text-input', maxlength: '2000', 'aria-label': 'Note',
        placeholder: 'Note (optional when resolving)', 'data-field': 'note',
      }),
      addNote: h('button', { class: 'btn', type: 'button', 'data-step': 'notes' }, 'Add note'),
      resolve: h('button', { class: 'btn btn-primary', type: 'button', 'data-step': 'resolve' },
        'Resolve'),
      error: h('p', { class: 'triage-error', role: 'alert', 'data-testid': 'triage-error' }),
      history: h('ol', { class: 'history', 'data-testid': 'history' }),
      alert: null,
    };
    card.actionBox = h('fieldset', { class: 'triage-action' },
      h('legend', {}, 'What was done'),
      h('div', { class: 'choices' }, card.choices), h('div', { class: 'triage-row' },
        card.reason, card.record));
    card.noteBox = h('div', { class: 'triage-row triage-note' }, card.note, card.addNote,
      card.resolve);
    card.el = h('article', { class: 'alert-card', 'data-alert-id': id, 'data-testid': 'alert-card' },
      card.head, card.meta, card.outcome,
      h('div', { class: 'triage' }, card.ack, card.actionBox, card.noteBox),
      card.error,
      h('details', { class: 'history-box', open: true },
        h('summary', {}, 'History'), card.history));
    card.error.hidden = true;
    for (const button of [card.ack, card.record, card.addNote, card.resolve]) {
      button.addEventListener('click', () => triage(card, button.dataset.step));
    }
    card.reason.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') triage(card, 'action');
    });
    card.note.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') triage(card, 'notes');
    });
    return card;
  }

  function updateAlertCard(card, a) {
    card.alert = a;
    const el = card.el;
    el.dataset.status = a.status;
    el.dataset.severity = a.severity;
    el.dataset.kind = a.kind;
    card.head.replaceChildren(
      h('span', { class: `sev sev-${a.severity}` }, SEVERITY_LABEL[a.severity] || a.severity),
      h('span', { class: 'alert-status', 'data-testid': 'alert-status' },
        STATUS_LABEL[a.status] || a.status),
      h('span', { class: 'alert-title' }, a.summary));
    const meta = [`Raised ${when(Date.parse(a.opened_at))}`];
    if (a.status === 'new') meta.push(` · respond by ${when(Date.parse(a.due_at))} · `, countdown(a));
    if (a.level > 0) meta.push(' · ', escalated(a.level));
    if (a.repeats > 0) meta.push(` · repeated ${a.repeats}×`);
    card.meta.replaceChildren(...meta);
    const outcome = [];
    if (a.acknowledged_by) outcome.push(`Acknowledged by ${person(a.acknowledged_by)}`);
    if (a.action) {
      const why = a.action_reason ? ` (${a.action_reason})` : '';
      outcome.push(`Action: ${ACTION_LABEL[a.action] || a.action}${why}`);
    }
    card.outcome.textContent = outcome.join(' · ');
    card.outcome.hidden = outcome.length === 0;

    const open = a.status !== 'resolved';
    card.ack.hidden = a.status !== 'new';
    // Once an action is recorded the next step is to resolve (a later change goes in a note).
    card.actionBox.hidden = a.status !== 'acknowledged';
    card.resolve.hidden = !open
      || !(a.status === 'actioned' || RESOLVE_WITHOUT_ACTION.has(a.kind));
    card.noteBox.hidden = false;
    card.note.placeholder = card.resolve.hidden ? 'Note' : 'Note (optional when resolving)';

    card.history.replaceChildren(...a.notes.map((n) => h('li', { 'data-what': n.what },
      h('time', { datetime: n.at }, when(Date.parse(n.at))), ' ',
      h('strong', { class: 'who' }, person(n.by)), ' ',
      h('span', { class: 'what' }, (HISTORY_LABEL[n.what] || n.what).toLowerCase()),
      n.text ? h('span', { class: 'note-text' }, `: ${n.text}`) : null)));
    syncCard(card);
  }

  function syncCard(card) {
    const busy = pending.has(card.alert.id);
    for (const b of [card.ack, card.record, card.addNote, card.resolve]) b.disabled = busy;
    card.el.setAttribute('aria-busy', String(busy));
  }

  function showCardError(card, message) {
    card.error.hidden = !message;
    card.error.textContent = message || '';
  }

  function renderAlerts() {
    const list = [...alerts.values()].sort((x, y) =>
      (x.status === 'resolved') - (y.status === 'resolved')
      || (SEVERITY_RANK[y.severity] || 0) - (SEVERITY_RANK[x.severity] || 0)
      || Date.parse(x.due_at) - Date.parse(y.due_at));
    const box = $('alert-cards');
    let prev = null;
    for (const a of list) {
      let card = cards.get(a.id);
      if (!card) {
        card = makeAlertCard(a.id);
        cards.set(a.id, card);
      }
      updateAlertCard(card, a);
      const want = prev ? prev.nextSibling : box.firstChild;
      if (card.el !== want) box.insertBefore(card.el, want);
      prev = card.el;
    }
    $('no-alerts').hidden = list.some((a) => a.status !== 'resolved');
  }

  async function triage(card, step) {
    const a = card.alert;
    if (!a || pending.has(a.id)) return;
    let body;
    if (step === 'action') {
      const choice = card.choices.map((l) => l.querySelector('input')).find((i) => i.checked);
      if (!choice) { showCardError(card, 'Choose what was done first.'); return; }
      body = { action: choice.value, reason: card.reason.value.trim() || null };
    } else if (step === 'resolve') {
      body = { note: card.note.value.trim() || null };
    } else if (step === 'notes') {
      const text = card.note.value.trim();
      if (!text) { showCardError(card, 'Write the note first.'); return; }
      body = { text };
    }
    pending.add(a.id);
    syncCard(card);
    try {
      // The version this nurse saw: a step on an alert someone else has moved on is refused.
      const seen = step === 'notes' ? '' : `?version=${a.version}`;
      const updated = await C.api(page.token(),
        `/api/virtual-ward/alerts/${encodeURIComponent(a.id)}/${step}${seen}`, { method: 'POST', body });
      showCardError(card, null);
      if (step === 'action') {
        card.reason.value = '';
        for (const l of card.choices) l.querySelector('input').checked = false;
      }
      if (step === 'notes' || step === 'resolve') card.note.value = '';
      offer(updated);
      anchorFromAlert(updated);
      pending.delete(a.id);
      renderAlerts();
      page.onSaved();
    } catch (err) {
      pending.delete(a.id);
      syncCard(card);
      if (err instanceof C.ApiError && err.status === 401) { page.authFailed(err.message); return; }
      showCardError(card, err instanceof C.ApiError
        ? `Not ${STEP_DONE[step]}: ${cleanMessage(err.message)}`
        : `Not ${STEP_DONE[step]}: could not reach WardWatch. Try again.`);
      page.onRefused();   // show how the alert is now (someone else may have moved it on)
    }
  }

  return { chip: alertChip, start, reset, shownIds, offer, render: renderAlerts };
})();
