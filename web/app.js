// The page's wiring: the event WebSocket (/v1/events), the chat, the control
// panel, the engine facts (/v1/workly/doctor), and `window.workly`, which tests
// and curious people can read.

import { Avatar, EMOTIONAL_PRESETS } from './avatar.js';

const $ = (id) => document.getElementById(id);

const state = {
  status: 'connecting',
  avatarLoaded: false,
  avatarName: null,
  avatarVersion: null,
  avatarLoads: 0,
  replying: false,
  tokens: 0,
  lastEmotion: null,
  socket: null,
  /** The stored conversation's name. */
  conversation: null,
  /** What Kira remembers, as `/v1/workly/memories` last said. */
  memories: [],
  /** The API key a server started with `--api-key` wants (kept in this browser). */
  apiKey: localStorage.getItem('workly-api-key'),
};

/** Fetches `path` from the server (`init` as `fetch` takes it), with the API key if there is one. */
function api(path, init = {}) {
  const headers = { ...(init.headers ?? {}), ...(state.apiKey ? { Authorization: `Bearer ${state.apiKey}` } : {}) };
  return fetch(path, { ...init, headers });
}

/**
 * A browser WebSocket cannot send an Authorization header, so the key
 * travels as a subprotocol, hex-encoded to be a valid token; the server
 * answers with `workly`.
 */
function eventProtocols() {
  if (!state.apiKey) return undefined;
  const hex = Array.from(new TextEncoder().encode(state.apiKey), (byte) => byte.toString(16).padStart(2, '0')).join('');
  return ['workly', `workly-key.${hex}`];
}

const avatar = new Avatar($('avatar-canvas'));

// --- chat ---------------------------------------------------------------------

/** The bubble of each reply in progress, by reply id. */
const bubbles = new Map();

function addMessage(role, text) {
  const item = document.createElement('li');
  item.className = `message ${role}`;
  item.textContent = text;
  $('messages').append(item);
  item.scrollIntoView({ block: 'end' });
  return item;
}

function setStatus(status, detail) {
  state.status = status;
  const pill = $('status-pill');
  pill.dataset.status = status;
  $('status-text').textContent = detail ? `${status} · ${detail}` : status;
}

/** Shows a server-reported connection (`unknown` until the server says). */
function showConnection(element, report) {
  let text = 'unknown';
  if (typeof report === 'string') text = report;
  else if (report && typeof report === 'object') {
    text = report.status ?? (report.connected === true ? 'connected' : report.connected === false ? 'disconnected' : 'unknown');
    if (report.address) text += ` (${report.address})`;
  }
  element.textContent = text;
  element.dataset.state = text.split(' ')[0];
}

/**
 * Handles one event from the server. The WebSocket calls this for every
 * message, and `window.workly.receive` is the same function, so tests exercise
 * the real path.
 */
function receive(event) {
  switch (event.type) {
    case 'status':
      setStatus(event.status, event.model);
      if ('unity' in event) showConnection($('unity-status'), event.unity);
      if ('vmc' in event) showConnection($('vmc-status'), event.vmc);
      if (event.status === 'ready') loadDoctor();
      break;
    case 'reply_started': {
      state.replying = true;
      const bubble = addMessage('kira', '');
      bubble.classList.add('streaming');
      bubbles.set(event.reply, bubble);
      break;
    }
    case 'token': {
      state.tokens += 1;
      const bubble = bubbles.get(event.reply);
      if (bubble) {
        bubble.textContent += event.text;
        bubble.scrollIntoView({ block: 'end' });
      }
      avatar.speak();
      break;
    }
    case 'reply_done': {
      state.replying = false;
      bubbles.get(event.reply)?.classList.remove('streaming');
      bubbles.delete(event.reply);
      // What was said may have taught her something.
      loadMemories();
      break;
    }
    case 'emotion': {
      if (avatar.showEmotion(event.emotion, event.intensity ?? 1)) state.lastEmotion = event.emotion;
      break;
    }
    case 'error': {
      state.replying = false;
      if (event.reply) bubbles.get(event.reply)?.classList.remove('streaming');
      addMessage('error', event.message);
      break;
    }
    default:
      // Newer servers may send events this page does not know: ignore them.
      break;
  }
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${location.host}/v1/events`, eventProtocols());
  state.socket = socket;
  socket.addEventListener('message', (message) => {
    try {
      receive(JSON.parse(message.data));
    } catch (error) {
      console.error('bad event', error);
    }
  });
  socket.addEventListener('close', () => {
    setStatus('disconnected', 'retrying');
    state.replying = false;
    setTimeout(connect, 1500);
  });
}

$('chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $('chat-input');
  const text = input.value.trim();
  if (!text || state.socket?.readyState !== WebSocket.OPEN) return;
  addMessage('you', text);
  state.socket.send(JSON.stringify({ type: 'chat', text }));
  input.value = '';
});
$('chat-input').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    $('chat-form').requestSubmit();
  }
});
$('reset').addEventListener('click', () => {
  state.socket?.send(JSON.stringify({ type: 'reset' }));
  $('messages').replaceChildren();
  addMessage('system', 'A fresh start.');
});

// --- avatar and control panel ----------------------------------------------------

async function loadAvatar(source) {
  $('avatar-error').hidden = true;
  state.avatarLoaded = false;
  try {
    await avatar.load(source);
    const { name, version } = avatar.describe();
    state.avatarName = name;
    state.avatarVersion = version;
    $('avatar-name').textContent = name;
    $('avatar-version').textContent = `VRM ${version}`;
    buildSliders();
    state.avatarLoaded = true;
    state.avatarLoads += 1;
    state.lastEmotion = null;
  } catch (error) {
    // The previous avatar, if any, is still shown.
    state.avatarLoaded = avatar.vrm !== null;
    $('avatar-error').textContent = `Cannot load this avatar: ${error.message ?? error}`;
    $('avatar-error').hidden = false;
    throw error;
  }
}

function buildSliders() {
  const names = avatar.expressionNames();
  const shown = EMOTIONAL_PRESETS.filter((name) => names.includes(name));
  const container = $('expression-sliders');
  container.replaceChildren();
  if (shown.length === 0) {
    container.textContent = 'This avatar has no emotion expressions.';
    return;
  }
  for (const name of shown) {
    const label = document.createElement('label');
    label.className = 'row';
    label.textContent = name[0].toUpperCase() + name.slice(1);
    const input = document.createElement('input');
    Object.assign(input, { type: 'range', min: 0, max: 1, step: 0.01, value: 0, id: `expression-${name}` });
    input.addEventListener('input', () => {
      avatar.setTarget(name, Number(input.value));
      state.lastEmotion = name;
    });
    label.append(input);
    container.append(label);
  }
}

// The sliders follow the live weights, except the one being dragged; the
// caption says which emotion shows until the face returns to neutral.
function syncSliders() {
  $('mood').textContent = avatar.holding() && state.lastEmotion ? state.lastEmotion : 'neutral';
  const weights = avatar.expressionWeights();
  for (const name of EMOTIONAL_PRESETS) {
    const input = $(`expression-${name}`);
    if (input && document.activeElement !== input) input.value = weights[name] ?? 0;
  }
  requestAnimationFrame(syncSliders);
}

$('vrm-file').addEventListener('change', async (event) => {
  const file = event.target.files?.[0];
  if (!file) return;
  await loadAvatar(await file.arrayBuffer()).catch(() => {});
  event.target.value = '';
});
$('default-avatar').addEventListener('click', () => loadAvatar('/avatar/default.vrm').catch(() => {}));
$('neutral').addEventListener('click', () => {
  avatar.showEmotion('neutral');
  state.lastEmotion = null;
});

/** Binds a range input to a setting, showing its value. */
function bindRange(id, setting, unit = '') {
  const input = $(id);
  const output = $(`${id}-value`);
  const apply = () => {
    avatar.settings[setting] = Number(input.value);
    output.textContent = `${input.value}${unit}`;
  };
  input.addEventListener('input', apply);
  apply();
}
function bindToggle(id, setting) {
  const input = $(id);
  const apply = () => { avatar.settings[setting] = input.checked; };
  input.addEventListener('change', apply);
  apply();
}
bindRange('speed', 'speed', '/s');
bindRange('hold', 'holdSeconds', ' s');
bindRange('blink-interval', 'blinkIntervalSeconds', ' s');
bindRange('head-amount', 'headAmount', '×');
bindRange('max-fps', 'maxFps', ' fps');
bindToggle('blink', 'blink');
bindToggle('head-motion', 'headMotion');
bindToggle('look-at', 'lookAt');

// --- the stored conversation -------------------------------------------------

/** Shows the conversation so far (what Kira remembers), when the page opens. */
async function loadConversation() {
  try {
    const response = await api('/v1/workly/conversation');
    if (response.status === 401) return false;
    if (!response.ok) return true;
    const { name, messages } = await response.json();
    state.conversation = name;
    for (const message of messages) addMessage(message.role === 'user' ? 'you' : 'kira', message.content);
  } catch (error) {
    console.error('cannot read /v1/workly/conversation', error);
  }
  return true;
}

/** Opens the page's session: the history, then the events; asks for the API key first if it is needed. */
async function start() {
  const allowed = await loadConversation();
  $('key-form').hidden = allowed;
  $('chat-form').hidden = !allowed;
  if (!allowed) {
    setStatus('locked', 'API key needed');
    if (state.apiKey) {
      $('api-key').value = '';
      $('api-key').placeholder = 'That key was not accepted; try again';
    }
    $('api-key').focus();
    return;
  }
  connect();
  loadDoctor();
  loadMemories();
}

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  state.apiKey = $('api-key').value.trim();
  localStorage.setItem('workly-api-key', state.apiKey);
  start();
});

// --- what Kira remembers -------------------------------------------------------

/** Shows the memories, each with its controls: edit in place, forget for good. */
function showMemories(memories) {
  state.memories = memories;
  $('memory-empty').hidden = memories.length > 0;
  $('memory-list').replaceChildren(...memories.map((memory) => {
    const item = document.createElement('li');
    item.className = 'memory';
    item.dataset.id = memory.id;
    const text = document.createElement('span');
    text.className = 'memory-text';
    text.textContent = memory.event_date ? `${memory.content} (${memory.event_date})` : memory.content;
    text.title = `${memory.kind}${memory.conversation ? `, said in ${memory.conversation}` : ''}`;
    const edit = document.createElement('button');
    edit.type = 'button';
    edit.className = 'link small memory-edit';
    edit.textContent = 'Edit';
    edit.addEventListener('click', () => editMemory(item, memory));
    const forget = document.createElement('button');
    forget.type = 'button';
    forget.className = 'link small memory-forget';
    forget.textContent = 'Forget';
    forget.addEventListener('click', () => forgetMemory(memory));
    item.append(text, edit, forget);
    return item;
  }));
}

async function loadMemories() {
  try {
    const response = await api('/v1/workly/memories');
    if (response.ok) showMemories(await response.json());
  } catch (error) {
    console.error('cannot read /v1/workly/memories', error);
  }
}

/** Says what went wrong with a memory, in the panel. */
async function memoryError(response) {
  const body = await response.json().catch(() => ({}));
  const error = $('memory-error');
  error.textContent = body.error?.message ?? `the server answered ${response.status}`;
  error.hidden = false;
}

/** Turns a memory's line into a field; Enter saves, Escape gives up. */
function editMemory(item, memory) {
  const field = document.createElement('input');
  field.type = 'text';
  field.className = 'memory-field';
  field.value = memory.content;
  field.setAttribute('aria-label', 'Memory');
  field.addEventListener('keydown', async (event) => {
    if (event.key === 'Escape') showMemories(state.memories);
    if (event.key !== 'Enter') return;
    event.preventDefault();
    const response = await api(`/v1/workly/memories/${memory.id}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ content: field.value }),
    });
    if (response.ok) $('memory-error').hidden = true;
    else await memoryError(response);
    loadMemories();
  });
  item.replaceChildren(field);
  field.focus();
}

async function forgetMemory(memory) {
  const response = await api(`/v1/workly/memories/${memory.id}`, { method: 'DELETE' });
  if (response.ok) $('memory-error').hidden = true;
  else await memoryError(response);
  loadMemories();
}

$('memory-refresh').addEventListener('click', loadMemories);

// --- engine facts --------------------------------------------------------------

function gib(bytes) {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

async function loadDoctor() {
  try {
    const response = await api('/v1/workly/doctor');
    if (!response.ok) return;
    const report = await response.json();
    const { engine, doctor } = report;
    const facts = [['Model', engine?.model_name ?? report.model]];
    if (engine?.remote) {
      // The model runs on another machine's engine: say where, not this machine's threads.
      facts.push(['Engine', `${engine.remote.url} (${engine.remote.dialect})`]);
      facts.push(['Context', `${engine.context_size} tokens`]);
    } else if (engine) {
      facts.push(['Context', `${engine.context_size} tokens`]);
      facts.push(['Threads', `${engine.threads_decode} decode · ${engine.threads_prefill} prefill`]);
      facts.push(['GPU layers', String(engine.gpu_layers)]);
    }
    facts.push(['CPU', `${doctor.cpu.model} (${doctor.cpu.logical_cores} threads)`]);
    facts.push(['RAM', `${gib(doctor.memory.available_bytes)} free of ${gib(doctor.memory.total_bytes)}`]);
    facts.push(['GPU', doctor.gpus.length
      ? doctor.gpus.map((gpu) => `${gpu.name}, ${gib(gpu.free_bytes)} free`).join('; ')
      : `none${doctor.gpu_note ? ` (${doctor.gpu_note})` : ''}`]);
    const list = $('engine-facts');
    list.replaceChildren(...facts.flatMap(([term, value]) => {
      const dt = document.createElement('dt');
      dt.textContent = term;
      const dd = document.createElement('dd');
      dd.textContent = value;
      return [dt, dd];
    }));
  } catch (error) {
    console.error('cannot read /v1/workly/doctor', error);
  }
}

// --- start ---------------------------------------------------------------------

window.workly = {
  get status() { return state.status; },
  get avatarLoaded() { return state.avatarLoaded; },
  get avatarName() { return state.avatarName; },
  get avatarVersion() { return state.avatarVersion; },
  get avatarLoads() { return state.avatarLoads; },
  get replying() { return state.replying; },
  get tokens() { return state.tokens; },
  get lastEmotion() { return state.lastEmotion; },
  get conversation() { return state.conversation; },
  get memories() { return state.memories; },
  expressionNames: () => avatar.expressionNames(),
  expressionWeights: () => avatar.expressionWeights(),
  receive,
  settings: avatar.settings,
};

// History first, so replies streaming in land after it.
start();
syncSliders();
loadAvatar('/avatar/default.vrm').catch((error) => console.error('default avatar', error));
