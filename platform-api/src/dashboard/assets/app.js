// The faas dashboard's only script: confirmations before actions, live parts refreshed when
// the platform says something changed, and the live log. Everything it shows is set as text.
(() => {
  'use strict';

  document.addEventListener('submit', (ev) => {
    const question = ev.target.getAttribute('data-confirm');
    if (question && !window.confirm(question)) {
      ev.preventDefault();
    }
  });

  const state = document.getElementById('live-state');
  const setState = (s) => { if (state) { state.dataset.state = s; state.textContent = s === 'on' ? 'live' : s; } };

  let refreshing = false;
  let again = false;
  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const res = await fetch(location.href, { headers: { Accept: 'text/html' }, credentials: 'same-origin' });
      if (res.redirected && res.url.includes('/dashboard/login')) { location.href = res.url; return; }
      if (!res.ok) { return; }
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      document.querySelectorAll('[data-refresh][id]').forEach((el) => {
        const fresh = doc.getElementById(el.id);
        // A part the viewer is typing or choosing in is left alone until the next change.
        if (fresh && !el.contains(document.activeElement)) {
          const open = new Set(Array.from(el.querySelectorAll('details[open][data-version]'), (d) => d.dataset.version));
          fresh.querySelectorAll('details[data-version]').forEach((d) => {
            if (open.has(d.dataset.version)) { d.open = true; }
          });
          el.replaceWith(document.adoptNode(fresh));
        }
      });
      document.body.dataset.refreshed = String(Date.now());
    } catch (e) {
      setState('retrying');
    } finally {
      refreshing = false;
      if (again) { again = false; refresh(); }
    }
  }

  const live = document.body.dataset.live;
  if (live && window.EventSource) {
    const es = new EventSource(live);
    es.addEventListener('ready', () => setState('on'));
    es.addEventListener('changed', refresh);
    es.onerror = () => setState('retrying');
  }

  const logs = document.getElementById('logs');
  if (logs && logs.dataset.src && window.EventSource) {
    const es = new EventSource(logs.dataset.src);
    const add = (text, cls) => {
      const atBottom = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
      const line = document.createElement('span');
      line.className = 'line ' + cls;
      line.textContent = text + '\n';
      logs.appendChild(line);
      while (logs.childNodes.length > 1000) { logs.removeChild(logs.firstChild); }
      if (atBottom) { logs.scrollTop = logs.scrollHeight; }
    };
    es.addEventListener('line', (ev) => {
      const r = JSON.parse(ev.data);
      add(`${r.ts.slice(11, 23)} ${r.instance} ${r.line}`, r.stream);
    });
    es.addEventListener('gap', (ev) => add(`… ${ev.data}`, 'event'));
  }
})();
