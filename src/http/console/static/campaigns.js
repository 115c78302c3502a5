// The campaign list: refreshes its rows, often while a campaign is live.
(function () {
  // While a campaign is live the rows refresh every few seconds; otherwise now and then
  // (delivery and read statuses keep arriving after the last send).
  const rows = document.getElementById('campaign-rows');
  const tick = () => {
    const live = rows.dataset.live === 'true';
    setTimeout(() => {
      if (document.hidden) return tick();
      fetch('/console/campaigns/rows', {credentials: 'same-origin'})
        .then(r => r.ok ? r.text() : Promise.reject(r.status))
        .then(html => {
          if (html !== rows.innerHTML) rows.innerHTML = html;
          rows.dataset.live = rows.querySelector('tr.live') ? 'true' : 'false';
        })
        .catch(() => {})
        .finally(tick);
    }, Number(live ? rows.dataset.refreshLive : rows.dataset.refreshIdle));
  };
  tick();
})();
