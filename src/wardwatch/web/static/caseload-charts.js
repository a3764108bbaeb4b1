/*
 * WardWatch virtual-ward caseload: the vital-sign parameters (names, units, NEWS2 chart
 * bands) and the open patient's trend charts, drawn as inline SVG at their pixel width.
 * Loaded after caseload-format.js and before caseload.js; exposed as
 * window.WardWatchCaseloadCharts.
 */
'use strict';

window.WardWatchCaseloadCharts = (() => {
  const { h } = window.WardWatchCommon;
  const { HOUR, londonTime, londonDay, londonParts, serverNow, when } =
    window.WardWatchCaseloadFormat;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  /*
   * The NEWS2 chart's bands as [upper edge, points], each edge halfway between two printed
   * values so that a value rounds half-up as the server scores it (36.05 °C → 36.1 → 0).
   * Used only to shade the charts and colour the points; the scores come from the server.
   */
  const SPO2_BANDS = {
    1: [[91.5, 3], [93.5, 2], [95.5, 1], [Infinity, 0]],
    '2-air': [[83.5, 3], [85.5, 2], [87.5, 1], [Infinity, 0]],
    '2-oxygen': [[83.5, 3], [85.5, 2], [87.5, 1], [92.5, 0], [94.5, 1], [96.5, 2], [Infinity, 3]],
  };
  const PARAMS = {
    respiration_rate: {
      label: 'Respiration rate', short: 'RR', unit: '/min', digits: 0, domain: [6, 30],
      bands: [[8.5, 3], [11.5, 1], [20.5, 0], [24.5, 2], [Infinity, 3]], ticks: [8, 12, 20, 25],
    },
    spo2: {
      label: 'SpO₂', short: 'SpO₂', unit: '%', digits: 0, domain: [84, 100],
      bands: SPO2_BANDS[1], ticks: [88, 92, 96],
    },
    air_or_oxygen: { label: 'Air or oxygen', short: 'air/O₂' },
    systolic_bp: {
      label: 'Systolic BP', short: 'BP', unit: 'mmHg', digits: 0, domain: [80, 180],
      bands: [[90.5, 3], [100.5, 2], [110.5, 1], [219.5, 0], [Infinity, 3]],
      ticks: [90, 110, 140, 220],
    },
    pulse: {
      label: 'Pulse', short: 'pulse', unit: '/min', digits: 0, domain: [40, 140],
      bands: [[40.5, 3], [50.5, 1], [90.5, 0], [110.5, 1], [130.5, 2], [Infinity, 3]],
      ticks: [50, 90, 110, 130],
    },
    temperature: {
      label: 'Temperature', short: 'temp', unit: '°C', digits: 1, domain: [35, 39.5],
      bands: [[35.05, 3], [36.05, 1], [38.05, 0], [39.05, 1], [Infinity, 2]],
      ticks: [35, 36, 38, 39],
    },
    consciousness: { label: 'Consciousness (ACVPU)', short: 'ACVPU' },
    diastolic_bp: {
      label: 'Diastolic BP', short: 'DBP', unit: 'mmHg', digits: 0, domain: [50, 100],
      ticks: [60, 80, 100],
    },
    oxygen_flow: {
      label: 'Oxygen flow', short: 'O₂ flow', unit: 'L/min', digits: 1, domain: [0, 4],
      ticks: [0, 2, 4],
    },
    oxygen_concentration: {
      label: 'Inspired oxygen', short: 'FiO₂', unit: '%', digits: 0, domain: [21, 40],
      ticks: [21, 28, 40],
    },
  };
  /** Charts always drawn (chart order), then any other parameter the patient has readings of. */
  const CHART_ORDER = ['respiration_rate', 'spo2', 'systolic_bp', 'pulse', 'temperature',
    'consciousness'];
  const NEWS2_BANDS = [[4.5, 0], [6.5, 2], [Infinity, 3]];

  const shortName = (p) => (PARAMS[p] && PARAMS[p].short) || String(p).replace(/_/g, ' ');

  function formatValue(p, v) {
    if (typeof v !== 'number') return String(v);
    const cfg = PARAMS[p];
    const digits = cfg && Number.isInteger(cfg.digits) ? cfg.digits : 1;
    return v.toFixed(digits);
  }

  const withUnit = (p, v) => {
    const unit = PARAMS[p] && PARAMS[p].unit;
    return unit ? `${formatValue(p, v)} ${unit}` : formatValue(p, v);
  };

  function pointsFor(bands, v) {
    if (!bands || typeof v !== 'number') return null;
    for (const [edge, points] of bands) if (v < edge) return points;
    return null;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** Europe/London's offset from UTC at `ms`, so time ticks fall on local hours. */
  function londonOffset(ms) {
    const p = Object.fromEntries(londonParts.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
    const local = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute);
    return local - Math.floor(ms / 60_000) * 60_000;
  }

  function timeTicks(t0, t1) {
    const step = (t1 - t0) <= 30 * HOUR ? 6 * HOUR : (t1 - t0) <= 80 * HOUR ? 12 * HOUR : 24 * HOUR;
    const off = londonOffset(t1);
    const out = [];
    for (let local = Math.ceil((t0 + off) / step) * step; local <= t1 + off; local += step) {
      const t = local - off;
      const label = step >= 24 * HOUR || londonTime.format(new Date(t)) === '00:00'
        ? londonDay.format(new Date(t)).replace(/ \w+$/, '') : londonTime.format(new Date(t));
      out.push([t, label]);
    }
    return out;
  }

  /**
   * One small chart frame, drawn at its real pixel width (so the text is never scaled): band
   * shading, y ticks, a time grid with its labels, and x(t), y(v) for the caller.
   */
  function frame({ t0, t1, lo, hi, bands, ticks, height, width, label }) {
    const W = width;
    const L = 34;
    const R = 8;
    const T = 5;
    const B = 17;
    const x = (t) => L + ((W - L - R) * (Math.min(Math.max(t, t0), t1) - t0)) / (t1 - t0);
    const y = (v) => T + ((height - T - B) * (hi - v)) / (hi - lo);
    const root = svg('svg', {
      viewBox: `0 0 ${W} ${height}`, width: W, height, class: 'chart-svg', role: 'img',
      'aria-label': label,
    });
    root.append(svg('rect', { x: L, y: T, width: W - L - R, height: height - T - B, class: 'plot' }));
    if (bands) {
      let below = lo;
      for (const [edge, points] of bands) {
        const top = Math.min(edge, hi);
        if (top > below && points > 0) {
          root.append(svg('rect', {
            x: L, y: y(top), width: W - L - R, height: y(below) - y(top),
            class: `band band-p${points}`,
          }));
        }
        below = Math.max(below, edge);
        if (below >= hi) break;
      }
    }
    for (const v of ticks || []) {
      if (v < lo || v > hi) continue;
      root.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }),
        svg('text', { x: L - 5, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, String(v)));
    }
    // Time labels, as many as fit (about one per 48 px).
    const times = timeTicks(t0, t1);
    const every = Math.max(1, Math.ceil((times.length * 48) / (W - L - R)));
    times.forEach(([t, text], i) => {
      root.append(svg('line', { x1: x(t), x2: x(t), y1: T, y2: height - B, class: 'grid grid-time' }));
      if (i % every === 0) {
        root.append(svg('text', { x: x(t), y: height - 4, class: 'tick', 'text-anchor': 'middle' }, text));
      }
    });
    return { root, x, y, W, L, R, T, B };
  }

  function figure(p, name, latest, count, root, wide = false) {
    return h('figure', {
      class: `chart${wide ? ' chart-wide' : ''}`, 'data-parameter': p, 'data-testid': 'chart',
    },
      h('figcaption', {},
        h('span', { class: 'chart-name' }, name),
        latest ? h('span', { class: 'chart-latest' }, latest) : null,
        h('span', { class: 'chart-count' }, count === 0 ? 'no readings in this period'
          : `${count} reading${count === 1 ? '' : 's'}`)),
      root);
  }

  /** The bands of `p`'s chart; SpO2's follow the patient's scale and oxygen. */
  function bandsFor(p, enrolment) {
    if (p !== 'spo2') return PARAMS[p] && PARAMS[p].bands;
    const e = enrolment;
    if (!e || e.scale !== 2) return SPO2_BANDS[1];
    return e.plan.oxygen === 'oxygen' ? SPO2_BANDS['2-oxygen'] : SPO2_BANDS['2-air'];
  }

  function lineChart(p, series, t0, t1, width, enrolment) {
    const cfg = PARAMS[p] || { label: p.replace(/_/g, ' '), digits: 1 };
    const points = series.filter(([at, v]) => typeof v === 'number' && Number.isFinite(Date.parse(at)));
    const values = points.map(([, v]) => v);
    let [lo, hi] = cfg.domain || [Math.min(...values, 0), Math.max(...values, 1)];
    if (values.length) {
      const pad = (hi - lo) * 0.08;
      lo = Math.min(lo, Math.min(...values) - pad);
      hi = Math.max(hi, Math.max(...values) + pad);
    }
    const bands = bandsFor(p, enrolment);
    const latest = points.length ? withUnit(p, points[points.length - 1][1]) : null;
    const height = 96;
    const f = frame({
      t0, t1, lo, hi, bands, ticks: cfg.ticks, height, width,
      label: `${cfg.label}: ${points.length} readings${latest ? `, latest ${latest}` : ''}`,
    });
    const xy = points.map(([at, v]) => [f.x(Date.parse(at)), f.y(v), at, v]);
    if (xy.length > 1) {
      f.root.append(svg('polyline', {
        points: xy.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' '), class: 'line',
      }));
    }
    for (const [px, py, at, v] of xy) {
      const pts = pointsFor(bands, v);
      f.root.append(svg('circle', {
        cx: px.toFixed(1), cy: py.toFixed(1), r: xy.length > 150 ? 2 : 3.5,
        class: `pt${pts === null ? '' : ` p${pts}`}`, 'data-value': v,
      }, svg('title', {}, `${when(Date.parse(at))}: ${withUnit(p, v)}${
        pts === null ? '' : ` (${pts} point${pts === 1 ? '' : 's'})`}`)));
    }
    if (!xy.length) f.root.append(emptyText(f, height));
    return figure(p, cfg.label, latest, points.length, f.root);
  }

  function emptyText(f, height) {
    return svg('text', {
      x: (f.L + f.W - f.R) / 2, y: (f.T + height - f.B) / 2 + 4, class: 'empty-text',
      'text-anchor': 'middle',
    }, 'No readings in this period');
  }

  /** Consciousness as a strip: A (alert) quiet, C/V/P/U (3 points each) red with the letter. */
  function acvpuStrip(series, t0, t1, width) {
    const height = 46;
    const f = frame({
      t0, t1, lo: 0, hi: 1, ticks: [], height, width,
      label: `Consciousness: ${series.length} readings`,
    });
    const dense = series.length > 60;
    for (const [at, v] of series) {
      const t = Date.parse(at);
      if (!Number.isFinite(t)) continue;
      const letter = String(v);
      const pts = letter === 'A' ? 0 : 3;
      const cx = f.x(t).toFixed(1);
      f.root.append(svg('g', { class: `pt acvpu p${pts}`, 'data-value': letter },
        svg('title', {}, `${when(t)}: ${letter}${pts ? ' (3 points)' : ''}`),
        svg('rect', { x: (+cx - 7).toFixed(1), y: 8, width: 14, height: 18, rx: 3 }),
        dense && pts === 0 ? null
          : svg('text', { x: cx, y: 21, 'text-anchor': 'middle' }, letter)));
    }
    if (!series.length) f.root.append(emptyText(f, height));
    const latest = series.length ? String(series[series.length - 1][1]) : null;
    return figure('consciousness', PARAMS.consciousness.label, latest, series.length, f.root,
      true);
  }

  /** NEWS2 totals over time; partial sets hollow, at their proven minimum. */
  function news2Chart(scores, t0, t1, width) {
    const values = scores.map((s) => (s.partial ? s.partial_total : s.total));
    const hi = Math.max(10, ...values.map((v) => v + 1));
    const height = 110;
    const f = frame({
      t0, t1, lo: 0, hi, bands: NEWS2_BANDS, ticks: [0, 5, 7], height, width,
      label: `NEWS2 total: ${scores.length} scores`,
    });
    const xy = scores.map((s, i) => [f.x(Date.parse(s.at)), f.y(values[i]), s, values[i]]);
    if (xy.length > 1) {
      f.root.append(svg('polyline', {
        points: xy.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' '), class: 'line',
      }));
    }
    for (const [px, py, s, v] of xy) {
      const band = pointsFor(NEWS2_BANDS, v);
      f.root.append(svg('circle', {
        cx: px.toFixed(1), cy: py.toFixed(1), r: 4,
        class: `pt score p${band}${s.partial ? ' partial' : ''}`, 'data-value': v,
      }, svg('title', {}, s.partial
        ? `${when(Date.parse(s.at))}: partial, at least ${v} (missing ${s.missing.map(shortName).join(', ')})`
        : `${when(Date.parse(s.at))}: NEWS2 ${v}`)));
    }
    if (!xy.length) f.root.append(emptyText(f, height));
    const last = scores[scores.length - 1];
    const latest = last ? (last.partial ? `partial ≥${last.partial_total}` : String(last.total)) : null;
    return figure('news2', 'NEWS2 total', latest, scores.length, f.root, true);
  }

  /**
   * Small multiples sharing one time range: the NEWS2 total across the top, then one chart
   * per parameter, two abreast when the panel is wide enough, consciousness as a strip. The
   * range is the last `hours` to the server's now; `enrolment` sets the SpO2 bands.
   */
  function draw(box, readings, scores, { hours, enrolment }) {
    const full = Math.floor(box.clientWidth) || 560;
    const gap = 12;
    const cols = full >= 520 ? 2 : 1;
    const half = Math.floor((full - gap * (cols - 1)) / cols);
    box.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
    const t1 = serverNow();
    const t0 = t1 - hours * HOUR;
    const extra = Object.keys(readings).filter((p) => !CHART_ORDER.includes(p)).sort();
    const lines = [...CHART_ORDER, ...extra].filter((p) => p !== 'consciousness')
      .map((p) => lineChart(p, readings[p] || [], t0, t1, half, enrolment));
    box.replaceChildren(news2Chart(scores, t0, t1, full), ...lines,
      acvpuStrip(readings.consciousness || [], t0, t1, full));
  }

  return { shortName, withUnit, draw };
})();
