// The conversation page: live transcript, quick replies, Ctrl+Enter sends.
(function () {
  const transcript = document.getElementById('transcript');
  const contact = encodeURIComponent(transcript.dataset.contact);
  const scroll = () => { transcript.scrollTop = transcript.scrollHeight; };
  scroll();
  const refresh = () => fetch('/console/conversations/' + contact + '/transcript', {credentials: 'same-origin'})
    .then(r => r.ok ? r.text() : Promise.reject(r.status))
    .then(html => { transcript.innerHTML = html; scroll(); }).catch(() => {});
  new EventSource('/console/conversations/' + contact + '/events').addEventListener('update', refresh);
  const text = document.getElementById('reply-text');
  document.querySelectorAll('.quick-reply').forEach(b => b.addEventListener('click', () => {
    text.value = b.dataset.text; text.focus();
  }));
  if (text && !text.disabled) {
    text.focus();
    text.addEventListener('keydown', e => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); text.form.requestSubmit(); }
    });
  }
})();
