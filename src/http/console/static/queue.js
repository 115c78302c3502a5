// The queue page: refreshes the rows when the queue changes (server-sent events).
(function () {
  const rows = document.getElementById('queue-rows');
  const refresh = () => fetch('/console/queue/rows', {credentials: 'same-origin'})
    .then(r => r.ok ? r.text() : Promise.reject(r.status))
    .then(html => {
      // Keep keyboard focus on the same row's button after a refresh.
      const focused = document.activeElement && document.activeElement.dataset.handoff;
      rows.innerHTML = html;
      if (focused) { const b = rows.querySelector('[data-handoff="' + focused + '"]'); if (b) b.focus(); }
    }).catch(() => {});
  const events = new EventSource('/console/queue/events');
  events.addEventListener('update', refresh);
})();
