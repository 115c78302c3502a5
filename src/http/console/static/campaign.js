// One campaign: refreshes its state and numbers, often while it is live.
(function () {
  // Refreshes the state and the numbers while the campaign is live. Each part is replaced
  // only when it changed, so the buttons are not swapped under the pointer while only the
  // numbers move, and keyboard focus stays on the same button.
  const root = document.getElementById('campaign');
  const tick = () => {
    const live = root.dataset.live === 'true';
    setTimeout(() => {
      if (document.hidden) return tick();
      fetch('/console/campaigns/' + encodeURIComponent(root.dataset.campaign) + '/live', {credentials: 'same-origin'})
        .then(r => r.ok ? r.text() : Promise.reject(r.status))
        .then(html => {
          const next = document.createElement('template');
          next.innerHTML = html;
          const focused = document.activeElement && document.activeElement.id;
          next.content.querySelectorAll('[data-part]').forEach(part => {
            const here = root.querySelector('[data-part="' + part.dataset.part + '"]');
            if (here && here.innerHTML !== part.innerHTML) here.innerHTML = part.innerHTML;
          });
          const head = next.content.querySelector('[data-live]');
          root.dataset.live = head ? head.dataset.live : 'false';
          if (focused && document.activeElement.id !== focused) {
            const again = document.getElementById(focused);
            if (again) again.focus();
          }
        })
        .catch(() => {})
        .finally(tick);
    }, Number(live ? root.dataset.refreshLive : root.dataset.refreshIdle));
  };
  tick();
})();
