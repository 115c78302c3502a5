// The flow simulator: a phone-like chat through the real webhook (sandbox mode only).
(function () {
  const chat = document.getElementById('chat');
  const phone = () => document.getElementById('phone').value.trim();
  const seen = new Map();   // 'in:'+wamid or 'out:'+seq -> element
  const acked = new Set();
  const post = (url, body) => fetch(url, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(body)});
  const bubble = (cls, build) => {
    const div = document.createElement('div'); div.className = 'line ' + cls;
    const b = document.createElement('div'); b.className = 'bubble'; div.appendChild(b);
    build(b); chat.appendChild(div); chat.scrollTop = chat.scrollHeight; return div;
  };
  const text = (parent, t, cls) => { const s = document.createElement('span'); s.className = cls || 'text'; s.textContent = t; parent.appendChild(s); return s; };
  // What the number sent is drawn from the server's record (see poll), like the bot's
  // replies, so both sides show after switching numbers or reloading.
  const send = (kind, t, id) => post('/simulator/send', {phone: phone(), kind, text: t, id: id || ''}).then(poll);
  const choice = (parent, title, kind, id) => {
    const btn = document.createElement('button'); btn.type = 'button'; btn.textContent = title;
    btn.addEventListener('click', () => send(kind, title, id)); parent.appendChild(btn);
  };
  const render = (m) => bubble('bot', b => {
    const body = m.body;
    if (body.type === 'text') text(b, body.text.body);
    else if (body.type === 'interactive') {
      const i = body.interactive;
      if (i.header && i.header.text) text(b, i.header.text, 'header');
      text(b, i.body.text);
      if (i.footer) text(b, i.footer.text, 'footer');
      const group = document.createElement('div'); group.className = 'choices'; b.appendChild(group);
      if (i.type === 'button') i.action.buttons.forEach(x => choice(group, x.reply.title, 'button', x.reply.id));
      if (i.type === 'list') i.action.sections.forEach(s => s.rows.forEach(r => choice(group, r.title, 'list', r.id)));
    } else if (body.type === 'template') {
      const t = body.template;
      text(b, 'Template “' + t.name + '” (' + (t.language && t.language.code) + ')', 'header');
      const comps = t.components || [];
      // A URL button's parameter is an authentication template's code (its copy-code
      // button): shown as the button a phone shows, not as text.
      const isCode = c => c.type === 'button' && c.sub_type === 'url';
      comps.filter(c => !isCode(c)).forEach(c => (c.parameters || []).forEach(p => text(b, '• ' + (p.text || JSON.stringify(p)))));
      const codes = comps.filter(isCode);
      if (codes.length) {
        const group = document.createElement('div'); group.className = 'choices'; b.appendChild(group);
        codes.forEach(c => {
          const code = ((c.parameters || [])[0] || {}).text || '';
          const btn = document.createElement('button'); btn.type = 'button'; btn.textContent = '⧉ Copy code';
          btn.addEventListener('click', () => {
            if (navigator.clipboard) navigator.clipboard.writeText(code).catch(() => {});
            const input = document.getElementById('text'); input.value = code; input.focus();
          });
          group.appendChild(btn);
        });
      }
    } else text(b, '[' + body.type + ']');
    const meta = text(b, '', 'tick'); meta.dataset.tick = '1';
  });
  function poll() { return fetch('/simulator/messages?phone=' + encodeURIComponent(phone()))
    .then(r => r.ok ? r.json() : Promise.reject(r.status))
    .then(data => {
      // Both sides in the order they happened; each drawn once.
      const lines = data.inbound.map(m => ({at: m.at, key: 'in:' + m.wamid, m}))
        .concat(data.messages.map(m => ({at: m.at, key: 'out:' + m.seq, m, bot: true})))
        .sort((a, b) => a.at - b.at);
      lines.forEach(l => {
        if (!l.bot) {
          if (!seen.has(l.key)) seen.set(l.key, bubble('contact', b => text(b, l.m.text)));
          return;
        }
        const m = l.m;
        let el = seen.get(l.key);
        if (!el) { el = render(m); seen.set(l.key, el); }
        const tick = el.querySelector('[data-tick]');
        tick.textContent = {sent: '✓', delivered: '✓✓', read: '✓✓ read', failed: '⚠ failed'}[m.status] || m.status;
        tick.className = 'tick ' + m.status;
        // A phone acknowledges what it shows: delivered, then read.
        if (m.wamid && !acked.has(m.wamid)) {
          acked.add(m.wamid);
          post('/simulator/ack', {phone: phone(), wamid: m.wamid, status: 'delivered'})
            .then(() => post('/simulator/ack', {phone: phone(), wamid: m.wamid, status: 'read'}));
        }
      });
      // One window per business number: the simulator's own (the first) says open or closed;
      // any other number the contact wrote to is named beside it.
      const others = (data.windows || []).filter(w => !w.simulated).map(w => w.number + (w.open ? ' open' : ' closed'));
      document.getElementById('window-state').textContent =
        (data.window_open ? '· window open' : '· window closed') + (others.length ? ' · ' + others.join(' · ') : '');
    }).catch(() => {}); }
  setInterval(poll, 700);
  document.getElementById('compose').addEventListener('submit', e => {
    e.preventDefault(); const input = document.getElementById('text');
    if (input.value.trim()) send('text', input.value.trim()); input.value = ''; input.focus();
  });
  // A photo or PDF goes through the fake Cloud API's media path, as a phone sends it; the
  // typed text, if any, is its caption.
  document.getElementById('attach').addEventListener('change', e => {
    const file = e.target.files[0]; if (!file) return;
    const input = document.getElementById('text');
    const form = new FormData();
    form.append('phone', phone()); form.append('caption', input.value.trim()); form.append('file', file);
    fetch('/simulator/attach', {method: 'POST', headers: {'x-simulator': '1'}, body: form}).then(poll);
    input.value = ''; e.target.value = '';
  });
  document.getElementById('window-closed').addEventListener('change', e => {
    if (e.target.checked) post('/simulator/window', {phone: phone()});
  });
  document.getElementById('language').addEventListener('change', e => post('/simulator/language', {phone: phone(), language: e.target.value}));
  document.getElementById('phone').addEventListener('change', () => { chat.innerHTML = ''; seen.clear(); poll(); });
})();
