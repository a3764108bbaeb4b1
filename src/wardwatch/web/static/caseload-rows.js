/*
 * WardWatch virtual-ward caseload: the table's rows, one per patient, and the NEWS2 badge
 * (also shown in the patient panel). Rows are reused across refreshes and only those that
 * changed place are moved, so the table does not flicker while it is read. Loaded after
 * caseload-format.js, caseload-charts.js and caseload-alerts.js, before caseload.js; exposed
 * as window.WardWatchCaseloadRows (one table per page: start() links it to the page).
 */
'use strict';

window.WardWatchCaseloadRows = (() => {
  const { h } = window.WardWatchCommon;
  const { agoEl, planIntervalMs, span, when } = window.WardWatchCaseloadFormat;
  const { shortName } = window.WardWatchCaseloadCharts;
  const Alerts = window.WardWatchCaseloadAlerts;

  const RISK_LABEL = {
    high: 'High risk', medium: 'Medium risk', 'low-medium': 'Low–medium risk',
    low: 'Low risk', unknown: 'Risk unknown',
  };

  let page = null;               // the page's hooks, from start()
  const rows = new Map();        // enrolment id → row parts

  /**
   * Link the table to the page: `selected()` the enrolment id of the open patient (or null),
   * `select(id)` opens a patient, `wardName(code)` names a ward.
   */
  function start(hooks) {
    page = hooks;
  }

  /** The risk a row is coloured by: a partial set that proves nothing is "partial". */
  function riskOf(score) {
    if (!score) return 'none';
    if (score.partial && score.risk === 'unknown') return 'partial';
    return score.risk;
  }

  /** The NEWS2 badge: a total, or a hatched "partial ≥N" with what is missing. */
  function news2Badge(score) {
    if (!score) {
      return h('span', { class: 'news2-cell' },
        h('span', { class: 'news2 news2-none', 'data-testid': 'news2' }, 'No score yet'));
    }
    if (score.partial) {
      const missing = score.missing.map(shortName).join(', ');
      return h('span', { class: 'news2-cell' },
        h('span', {
          class: 'news2 is-partial', 'data-risk': score.risk, 'data-testid': 'news2',
          title: `Partial set: at least ${score.partial_total}; missing ${missing}`,
        }, `partial ≥${score.partial_total}`),
        h('span', { class: 'news2-note', 'data-testid': 'news2-missing' },
          score.risk === 'unknown'
            ? `missing ${missing}` : `${RISK_LABEL[score.risk]} at least · missing ${missing}`));
    }
    return h('span', { class: 'news2-cell' },
      h('span', { class: 'news2', 'data-risk': score.risk, 'data-testid': 'news2' },
        String(score.total)),
      h('span', { class: 'news2-note' }, RISK_LABEL[score.risk] || score.risk));
  }

  function makeRow(id) {
    const row = {
      button: h('button', {
        class: 'patient-button', type: 'button', 'data-testid': 'patient-button',
        'aria-controls': 'detail',
      }),
      place: h('span', { class: 'place' }),
      news2: h('td', { class: 'col-news2' }),
      age: h('td', { class: 'col-age' }),
      alerts: h('td', { class: 'col-alerts' }),
      device: h('td', { class: 'col-device' }),
    };
    row.tr = h('tr', { class: 'patient-row', 'data-enrolment-id': id, 'data-testid': 'patient-row' },
      h('th', { scope: 'row', class: 'col-patient' }, row.button, row.place),
      row.news2, row.age, row.alerts, row.device);
    // The whole row opens the patient (the button is there for the keyboard).
    row.tr.addEventListener('click', () => page.select(id));
    return row;
  }

  function updateRow(row, e) {
    const s = e.latest;
    const tr = row.tr;
    tr.dataset.risk = riskOf(s);
    tr.dataset.news2 = s ? String(s.partial ? s.partial_total : s.total) : '';
    tr.dataset.partial = String(Boolean(s && s.partial));
    tr.classList.toggle('is-selected', page.selected() === e.id);
    row.button.setAttribute('aria-expanded', String(page.selected() === e.id));
    row.button.replaceChildren(h('span', { class: 'patient-label' }, e.patient,
      e.nhs_number ? null : h('span', { class: 'id-kind' }, ' (local ID)')));
    row.place.textContent = `${page.wardName(e.ward)} · ${e.bed}`;
    row.news2.replaceChildren(news2Badge(s));
    if (e.scale === 2) {
      row.news2.append(h('span', {
        class: 'scale-tag', title: 'SpO₂ scored on scale 2 (target 88–92%)',
      }, 'SpO₂ scale 2'));
    }

    const interval = planIntervalMs(e.plan);
    if (s) {
      const at = Date.parse(s.at);
      row.age.replaceChildren(
        agoEl(at, { class: 'ago score-age', 'data-interval': interval, 'data-testid': 'score-age' }),
        h('span', { class: 'sub' }, `at ${when(at)} · due every ${span(interval / 60_000)}`));
    } else {
      row.age.replaceChildren(
        h('span', { class: 'score-age no-score', 'data-testid': 'score-age' }, 'No readings yet'),
        agoEl(Date.parse(e.enrolled_at), { class: 'ago sub', 'data-prefix': 'enrolled ' }));
    }

    row.alerts.replaceChildren(e.open_alerts.length
      ? h('ul', { class: 'alert-chips' }, e.open_alerts.map(Alerts.chip))
      : h('span', { class: 'muted' }, 'None'));
    row.device.replaceChildren(...(e.devices.length
      ? e.devices.map(deviceLine) : [h('span', { class: 'muted' }, 'No device')]));
  }

  function battery(pct) {
    if (pct === null || pct === undefined) return h('span', { class: 'battery muted' }, 'battery ?');
    const low = pct <= 20;
    return h('span', { class: `battery${low ? ' is-low' : ''}`, title: `Battery ${pct}%` },
      h('span', { class: 'battery-icon', 'aria-hidden': 'true' },
        h('span', { class: 'battery-fill', style: { width: `${Math.max(0, Math.min(100, pct))}%` } })),
      `${pct}%`);
  }

  function deviceLine(d) {
    return h('div', { class: 'device', 'data-testid': 'device' },
      battery(d.battery_pct),
      d.last_seen_at
        ? agoEl(Date.parse(d.last_seen_at), { class: 'ago sub', 'data-prefix': 'seen ' })
        : h('span', { class: 'sub' }, 'never seen'),
      h('span', { class: 'sub code' }, d.serial));
  }

  /** Reuse each patient's row, move only what changed place. */
  function render(body, enrolments) {
    const seen = new Set();
    let prev = null;
    for (const e of enrolments) {
      let row = rows.get(e.id);
      if (!row) {
        row = makeRow(e.id);
        rows.set(e.id, row);
      }
      updateRow(row, e);
      seen.add(e.id);
      const want = prev ? prev.nextSibling : body.firstChild;
      if (row.tr !== want) body.insertBefore(row.tr, want);
      prev = row.tr;
    }
    for (const [id, row] of rows) {
      if (seen.has(id)) continue;
      row.tr.remove();
      rows.delete(id);
    }
  }

  /** Mark the open patient's row (none when `id` is null). */
  function markSelected(id) {
    for (const [rid, row] of rows) {
      row.tr.classList.toggle('is-selected', rid === id);
      row.button.setAttribute('aria-expanded', String(rid === id));
    }
  }

  /** The panel of `id` was closed: no row is selected, and the keyboard is back on its row. */
  function closed(id) {
    const row = rows.get(id);
    for (const r of rows.values()) {
      r.tr.classList.remove('is-selected');
      r.button.setAttribute('aria-expanded', 'false');
    }
    if (row) row.button.focus();
  }

  return { start, riskOf, news2Badge, render, markSelected, closed };
})();
