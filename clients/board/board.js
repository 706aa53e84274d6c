// The live board: the user's tasks in three columns, kept current by the
// client library (./lib/ is clients/js/src, served beside this file). No
// build step: the browser loads these modules as they are.
//
// Every change shows at once wherever the user has the board open: the
// store applies the live events (and the tab's own writes) in seq order.
// Writes carry If-Match with the version the user saw, so a change made
// elsewhere meanwhile is never overwritten blindly: the board shows the
// newer version and lets the user choose.

import { TasksClient, LiveTasks, STATUSES, isApiError, NetworkError } from './lib/index.js';

const TOKEN_KEY = 'tasks.token';
const STATUS_LABELS = { TODO: 'To do', IN_PROGRESS: 'In progress', DONE: 'Done' };
const STATE_LABELS = {
  idle: 'Offline',
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

const $ = (selector, root = document) => root.querySelector(selector);

// --- the session ---------------------------------------------------------------

// The token lives in localStorage, so every tab of this browser shares
// one session: logging out in one ends it in all (their sockets close
// with 4001).
const storage = {
  get() {
    try {
      return localStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  set(token) {
    try {
      localStorage.setItem(TOKEN_KEY, token);
    } catch {
      // Storage refused (private mode): the session lasts as long as the tab.
    }
  },
  remove(ifStill) {
    try {
      // Another tab may have logged in again meanwhile: keep its token.
      if (localStorage.getItem(TOKEN_KEY) === ifStill) localStorage.removeItem(TOKEN_KEY);
    } catch {
      // As above.
    }
  },
};

const client = new TasksClient({ token: storage.get() });
let heldToken = client.token;
client.on('token', (token) => {
  if (token) storage.set(token);
  else storage.remove(heldToken);
  heldToken = token;
});
client.on('unauthorized', () => sessionEnded());

/** @type {LiveTasks | null} */
let store = null;
const cards = new Map(); // task id -> its <li>
const pendingMoves = new Map(); // task id -> the status a drag is moving it to
let registering = false;
/**
 * What the editor dialog edits: `original` is the task as the user started
 * from (their changes are the fields that differ from it), `version` the
 * version the next write must match, `latest` the newer version a 412
 * showed, `retry` what "apply mine" does then.
 */
let editing = null;

wireLogin();
wireBoard();
wireEditor();
if (client.token) enterBoard();
else showLogin();

function showView(name) {
  $('#login-view').hidden = name !== 'login';
  $('#board-view').hidden = name !== 'board';
  $('#who').hidden = name !== 'board';
}

function showLogin(message) {
  closeEditor();
  showView('login');
  setIndicator('offline');
  const notice = $('#login-message');
  notice.textContent = message ?? '';
  notice.hidden = !message;
  $('#login-form input[name="password"]').focus();
}

async function enterBoard() {
  showView('board');
  clearBoard();
  try {
    const me = await client.getProfile();
    $('#user-name').textContent = me.name;
    $('#user-name').title = me.email;
  } catch (error) {
    // A 401 already took us to the login screen; anything else (the API
    // unreachable) is for the live connection to ride out.
    if (isApiError(error) && error.status === 401) return;
  }
  if (!client.token) return;
  store = new LiveTasks(client);
  store.on('change', (change) => render(change));
  store.on('state', ({ state }) => setIndicator(state));
  store.on('unauthorized', () => sessionEnded());
  store.on('error', (error) => console.warn('live board:', error));
  store.start();
  setIndicator(store.state);
}

function stopStore() {
  store?.stop();
  store = null;
}

// The token no longer works: logged out elsewhere (4001), expired, revoked.
function sessionEnded() {
  if (!store && !client.token) return;
  stopStore();
  client.setToken(null);
  showLogin('Your session has ended (logged out elsewhere, or expired). Please log in again.');
}

function wireLogin() {
  const form = $('#login-form');
  $('#mode-toggle').addEventListener('click', () => {
    registering = !registering;
    $('#name-field').hidden = !registering;
    $('#name-field input').required = registering;
    $('#login-title').textContent = registering ? 'Create an account' : 'Log in';
    $('#login-submit').textContent = registering ? 'Create account' : 'Log in';
    $('#mode-toggle').textContent = registering ? 'I have an account' : 'Create an account instead';
    form.elements.password.autocomplete = registering ? 'new-password' : 'current-password';
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const email = String(data.get('email')).trim();
    const password = String(data.get('password'));
    const error = $('#login-error');
    error.hidden = true;
    $('#login-submit').disabled = true;
    try {
      if (registering) await client.register({ email, password, name: String(data.get('name')).trim() });
      else await client.login(email, password);
      $('#login-message').hidden = true;
      await enterBoard();
    } catch (failure) {
      error.textContent = describe(failure, 'login');
      error.hidden = false;
    } finally {
      $('#login-submit').disabled = false;
    }
  });
  $('#logout').addEventListener('click', async () => {
    stopStore();
    try {
      await client.logout();
    } catch {
      // Unreachable: the token is forgotten here all the same.
    }
    showLogin('You are logged out.');
  });
}

// --- the board -------------------------------------------------------------

function setIndicator(state) {
  const indicator = $('#connection');
  indicator.dataset.state = state;
  $('.label', indicator).textContent = STATE_LABELS[state] ?? state;
}

function column(status) {
  return $(`.column[data-status="${status}"]`);
}

function clearBoard() {
  for (const li of cards.values()) li.remove();
  cards.clear();
  pendingMoves.clear();
  for (const status of STATUSES) $('.count', column(status)).textContent = '0';
  $('#loading').hidden = false;
  hideToast();
}

// Highest priority first, then newest.
function compareTasks(a, b) {
  return b.priority - a.priority || b.createdAt.localeCompare(a.createdAt) || a.id.localeCompare(b.id);
}

// One <li> per task id, moved and updated in place: a card is never drawn
// twice, and a card being dragged or focused survives a re-render.
function render(change) {
  if (!store) return;
  $('#loading').hidden = store.loaded;
  const byStatus = Object.fromEntries(STATUSES.map((s) => [s, []]));
  for (const task of store.list()) {
    const status = pendingMoves.get(task.id) ?? task.status;
    (byStatus[status] ?? byStatus.TODO).push(task);
  }
  const shown = new Set();
  for (const status of STATUSES) {
    const list = $('.cards', column(status));
    const tasks = byStatus[status].sort(compareTasks);
    tasks.forEach((task, index) => {
      shown.add(task.id);
      let li = cards.get(task.id);
      if (!li) {
        li = createCard(task.id);
        cards.set(task.id, li);
      }
      fillCard(li, task);
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] ?? null);
    });
    $('.count', column(status)).textContent = String(tasks.length);
  }
  for (const [id, li] of cards) {
    if (!shown.has(id)) {
      li.remove();
      cards.delete(id);
    }
  }
  if (change?.cause === 'event' && change.event?.type !== 'TASK_DELETED') flash(cards.get(change.task.id));
  refreshEditorNotice();
}

function createCard(id) {
  const li = document.createElement('li');
  li.className = 'card';
  li.draggable = true;
  li.tabIndex = 0;
  li.dataset.taskId = id;
  li.innerHTML =
    '<div class="card-title"></div><p class="card-desc"></p>' +
    '<div class="card-meta"><span class="prio"></span><span class="version"></span></div>';
  return li;
}

function fillCard(li, task) {
  const pending = pendingMoves.has(task.id);
  const key = `${task.version}/${pending}`;
  if (li.dataset.key === key) return;
  li.dataset.key = key;
  li.dataset.version = String(task.version);
  li.dataset.status = task.status;
  li.classList.toggle('pending', pending);
  $('.card-title', li).textContent = task.title;
  const desc = $('.card-desc', li);
  desc.textContent = task.description ?? '';
  desc.hidden = !task.description;
  const prio = $('.prio', li);
  prio.textContent = `P${task.priority}`;
  prio.classList.toggle('high', task.priority >= 7);
  $('.version', li).textContent = `v${task.version}`;
  li.setAttribute('aria-label', `${task.title}, ${STATUS_LABELS[task.status]}, priority ${task.priority}`);
}

function flash(li) {
  if (!li) return;
  li.classList.remove('flash');
  void li.offsetWidth; // restart the animation
  li.classList.add('flash');
}

function wireBoard() {
  const form = $('#new-task');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const error = $('#new-task-error');
    error.hidden = true;
    try {
      const task = await client.createTask({
        title: String(data.get('title')),
        priority: Number(data.get('priority') || 0),
        status: String(data.get('status')),
      });
      store?.apply(task);
      form.elements.title.value = '';
      form.elements.title.focus();
    } catch (failure) {
      error.textContent = describe(failure);
      error.hidden = false;
    }
  });

  for (const status of STATUSES) {
    const col = column(status);
    col.addEventListener('dragover', (event) => {
      if (!event.dataTransfer.types.includes('text/plain')) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'move';
      col.classList.add('drop-target');
    });
    col.addEventListener('dragleave', (event) => {
      if (!col.contains(event.relatedTarget)) col.classList.remove('drop-target');
    });
    col.addEventListener('drop', (event) => {
      event.preventDefault();
      col.classList.remove('drop-target');
      const id = event.dataTransfer.getData('text/plain');
      if (id) moveTask(id, status);
    });
    const list = $('.cards', col);
    list.addEventListener('dragstart', (event) => {
      const li = event.target.closest('.card');
      if (!li) return;
      event.dataTransfer.setData('text/plain', li.dataset.taskId);
      event.dataTransfer.effectAllowed = 'move';
    });
    list.addEventListener('click', (event) => {
      const li = event.target.closest('.card');
      if (li) openEditor(li.dataset.taskId);
    });
    list.addEventListener('keydown', (event) => {
      const li = event.target.closest('.card');
      if (li && (event.key === 'Enter' || event.key === ' ')) {
        event.preventDefault();
        openEditor(li.dataset.taskId);
      }
    });
  }
  $('#toast .toast-close').addEventListener('click', hideToast);
}

// A drag to another column: shown at once, then PUT with the version the
// card had. If it changed meanwhile the move is not applied; the newer
// version is shown, with the choice to move it anyway.
async function moveTask(id, status) {
  const task = store?.get(id);
  if (!task || (pendingMoves.get(id) ?? task.status) === status) return;
  pendingMoves.set(id, status);
  render();
  try {
    const updated = await client.updateTask(id, { status }, { ifMatch: task.version });
    pendingMoves.delete(id);
    store?.apply(updated);
  } catch (failure) {
    pendingMoves.delete(id);
    if (isApiError(failure, 'VERSION_MISMATCH')) {
      const latest = await fetchLatest(id);
      if (latest) {
        toast(
          `“${latest.title}” was changed elsewhere (now version ${latest.version}: ${STATUS_LABELS[latest.status]}, ` +
            `priority ${latest.priority}), so it was not moved to ${STATUS_LABELS[status]}.`,
          { label: `Move to ${STATUS_LABELS[status]} anyway`, run: () => moveTask(id, status) },
        );
      }
    } else if (isApiError(failure, 'NOT_FOUND')) {
      store?.remove(id);
      toast(`“${task.title}” was deleted elsewhere.`);
    } else {
      toast(describe(failure));
    }
  }
  render();
}

// The task as the server has it now (null if deleted), taken into the store.
async function fetchLatest(id) {
  try {
    const latest = await client.getTask(id);
    store?.apply(latest);
    return latest;
  } catch (failure) {
    if (isApiError(failure, 'NOT_FOUND')) {
      store?.remove(id);
      return null;
    }
    throw failure;
  }
}

function toast(text, action) {
  const box = $('#toast');
  $('.toast-text', box).textContent = text;
  const button = $('.toast-action', box);
  button.hidden = !action;
  button.onclick = null;
  if (action) {
    button.textContent = action.label;
    button.onclick = () => {
      hideToast();
      action.run();
    };
  }
  box.hidden = false;
}

function hideToast() {
  $('#toast').hidden = true;
}

// --- the editor ------------------------------------------------------------

function wireEditor() {
  const dialog = $('#editor');
  const form = $('#edit-form');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    save();
  });
  $('#cancel-edit').addEventListener('click', closeEditor);
  $('#delete-task').addEventListener('click', () => remove());
  dialog.addEventListener('close', () => {
    editing = null;
  });
  $('#take-theirs').addEventListener('click', () => {
    if (!editing?.latest) return;
    fillEditor(editing.latest);
    editing = { id: editing.id, original: editing.latest, version: editing.latest.version };
    $('#conflict').hidden = true;
  });
  $('#keep-mine').addEventListener('click', () => {
    if (!editing?.latest) return;
    editing.version = editing.latest.version;
    $('#conflict').hidden = true;
    editing.retry?.();
  });
}

function openEditor(id) {
  const task = store?.get(id);
  if (!task) return;
  editing = { id, original: task, version: task.version };
  fillEditor(task);
  $('#conflict').hidden = true;
  $('#edit-error').hidden = true;
  $('#changed-elsewhere').hidden = true;
  $('#editor').showModal();
  $('#edit-form').elements.title.focus();
}

function closeEditor() {
  const dialog = $('#editor');
  if (dialog.open) dialog.close();
  editing = null;
}

function fillEditor(task) {
  const fields = $('#edit-form').elements;
  fields.title.value = task.title;
  fields.description.value = task.description ?? '';
  fields.status.value = task.status;
  fields.priority.value = String(task.priority);
  $('#editor-version').textContent = `Version ${task.version} · updated ${new Date(task.updatedAt).toLocaleString()}`;
}

// The fields the user changed from what they started from.
function editedFields() {
  const fields = $('#edit-form').elements;
  const original = editing.original;
  const now = {
    title: fields.title.value,
    description: fields.description.value === '' ? null : fields.description.value,
    status: fields.status.value,
    priority: Number(fields.priority.value),
  };
  const changes = {};
  for (const [key, value] of Object.entries(now)) {
    if (key === 'title' ? value.trim() !== original.title : value !== original[key]) changes[key] = value;
  }
  return changes;
}

async function save() {
  if (!editing) return;
  const { id } = editing;
  const changes = editedFields();
  if (Object.keys(changes).length === 0) return closeEditor();
  editing.retry = save;
  try {
    const updated = await client.updateTask(id, changes, { ifMatch: editing.version });
    store?.apply(updated);
    closeEditor();
  } catch (failure) {
    await editorFailure(failure, 'save');
  }
}

async function remove() {
  if (!editing) return;
  const { id } = editing;
  editing.retry = remove;
  try {
    await client.deleteTask(id, { ifMatch: editing.version });
    store?.remove(id);
    closeEditor();
  } catch (failure) {
    await editorFailure(failure, 'delete');
  }
}

async function editorFailure(failure, action) {
  const error = $('#edit-error');
  error.hidden = true;
  if (isApiError(failure, 'VERSION_MISMATCH')) {
    const latest = await fetchLatest(editing?.id).catch(() => undefined);
    if (!editing) return;
    if (latest === null) return showGone();
    if (latest) return showConflict(latest, action);
  }
  if (isApiError(failure, 'NOT_FOUND')) {
    store?.remove(editing.id);
    return showGone();
  }
  error.textContent = describe(failure);
  error.hidden = false;
}

// 412: someone else's change came first. Show theirs beside the form
// (which still holds the user's edit) and let the user choose.
function showConflict(latest, action) {
  editing.latest = latest;
  const when = new Date(latest.updatedAt).toLocaleTimeString();
  $('#conflict-text').textContent =
    `This task was changed elsewhere while you had it open: it is now at version ${latest.version} ` +
    `(updated ${when}). The newer version:`;
  $('#newer-title').textContent = latest.title;
  $('#newer-description').textContent = latest.description ?? '—';
  $('#newer-status').textContent = STATUS_LABELS[latest.status];
  $('#newer-priority').textContent = String(latest.priority);
  $('#keep-mine').textContent = action === 'delete' ? 'Delete it anyway' : 'Apply my changes over it';
  $('#conflict').hidden = false;
  $('#changed-elsewhere').hidden = true;
}

function showGone() {
  const error = $('#edit-error');
  error.textContent = 'This task was deleted elsewhere.';
  error.hidden = false;
  $('#conflict').hidden = true;
}

// While the dialog is open, say so when the task changes elsewhere.
function refreshEditorNotice() {
  if (!editing || !$('#editor').open) return;
  const notice = $('#changed-elsewhere');
  const current = store?.get(editing.id);
  if (!current) {
    notice.textContent = 'This task was deleted elsewhere.';
    notice.hidden = false;
  } else if (current.version > editing.version && $('#conflict').hidden) {
    notice.textContent = `Changed elsewhere while you edit (now version ${current.version}); saving will show you both.`;
    notice.hidden = false;
  } else {
    notice.hidden = true;
  }
}

// --- messages --------------------------------------------------------------

function describe(error, context) {
  if (error instanceof NetworkError) return 'Cannot reach the server; check the connection and try again.';
  if (!isApiError(error)) return String(error?.message ?? error);
  switch (error.code) {
    case 'UNAUTHORIZED':
      return context === 'login' ? 'Wrong email or password.' : 'Your session has ended; please log in again.';
    case 'RATE_LIMITED':
      return `Too many attempts; try again${error.retryAfter ? ` in ${error.retryAfter} s` : ' later'}.`;
    case 'EMAIL_TAKEN':
      return 'That email is already registered.';
    case 'VALIDATION_ERROR':
      return error.details?.length ? error.details.map((d) => `${d.field} ${d.message}`).join('; ') : error.message;
    case 'UNAVAILABLE':
      return 'The service is busy or unavailable; try again in a moment.';
    default:
      return error.message;
  }
}
