/*
 * The daily report in the browser: /report?day=YYYY-MM-DD#token=…
 * The report is a self-contained HTML page served by GET /api/reports/daily?format=html,
 * which needs the bearer token; this page fetches it with the token and puts it in place of
 * itself, so the browser shows, and prints to PDF, the report itself.
 */
'use strict';

(() => {
  const { ApiError, errorMessage, tokenFromHash, savedToken, saveToken, forgetToken } =
    window.WardWatchCommon;
  const message = document.getElementById('message');
  const ask = document.getElementById('ask');

  function problem(text) {
    message.textContent = text;
    message.className = 'problem';
  }

  async function show(token) {
    const day = new URLSearchParams(location.search).get('day');
    const query = new URLSearchParams({ format: 'html' });
    if (day) query.set('day', day);
    const res = await fetch(`/api/reports/daily?${query}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (!res.ok) throw new ApiError(res.status, await errorMessage(res));
    const html = await res.text();
    document.open();
    document.write(html);
    document.close();
  }

  async function start(token) {
    if (!token) {
      problem('Open this page with #token=… at the end of its address, or enter a token.');
      ask.hidden = false;
      return;
    }
    try {
      await show(token);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        forgetToken();
        ask.hidden = false;
      }
      problem(`The report could not be shown: ${err.message}`);
    }
  }

  ask.addEventListener('submit', (event) => {
    event.preventDefault();
    const token = document.getElementById('token').value.trim();
    saveToken(token);
    start(token);
  });

  start(tokenFromHash() || savedToken());
})();
