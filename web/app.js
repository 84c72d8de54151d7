// The page's wiring: the event WebSocket (/v1/events), the chat, Kira's voice
// and the microphone, the control panel, the engine facts (/v1/workly/doctor),
// and `window.workly`, which tests and curious people can read.

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
/** The bubble of each reply, kept after it ends: an interruption rewrites it. */
const spoken = new Map();

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
      if (event.voice && !voice.configured) showVoiceSettings(event.voice);
      if ('unity' in event) showConnection($('unity-status'), event.unity);
      if ('vmc' in event) showConnection($('vmc-status'), event.vmc);
      if (event.status === 'ready') loadDoctor();
      break;
    case 'reply_started': {
      state.replying = true;
      const bubble = addMessage('kira', '');
      bubble.classList.add('streaming');
      bubbles.set(event.reply, bubble);
      spoken.set(event.reply, bubble);
      if (event.source === 'page' && voice.expecting) {
        // A new question while she still speaks: the old answer stops there.
        stopVoice();
        voice.expecting = false;
        voice.current = { reply: event.reply, finished: 0, pending: 0, written: false };
        $('stop-voice').hidden = false;
      }
      break;
    }
    case 'token': {
      state.tokens += 1;
      const bubble = bubbles.get(event.reply);
      if (bubble) {
        bubble.textContent += event.text;
        bubble.scrollIntoView({ block: 'end' });
      }
      // A spoken reply moves the mouth with the voice instead.
      if (voice.current?.reply !== event.reply) avatar.speak();
      break;
    }
    case 'audio':
      receiveAudio(event);
      break;
    case 'speech_started':
      // The person speaks over Kira: she stops at once.
      if (voice.current) {
        voice.bargeIns += 1;
        stopVoice();
      }
      break;
    case 'heard':
      voice.heard.push(event.text);
      // Hands-free, every utterance is answered aloud.
      if (event.text && voice.mic?.handsFree) expectVoice();
      if (event.text) addMessage('you', event.text);
      else {
        addMessage('system', 'Kira heard nothing there; try again.');
        // No message, so no reply to speak (hands-free waits for the next).
        if (!voice.mic?.handsFree) voice.expecting = false;
      }
      break;
    case 'voice_stages':
      voice.stages = event.stages;
      break;
    case 'interrupted': {
      const bubble = spoken.get(event.reply);
      if (bubble) bubble.textContent = event.kept;
      voice.interrupted = event.kept;
      break;
    }
    case 'reply_done': {
      state.replying = false;
      if (voice.current?.reply === event.reply) {
        voice.current.written = true;
        voiceDone();
      }
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
      if (event.reply && voice.current?.reply === event.reply) {
        voice.current.written = true;
        voiceDone();
      }
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
  const speak = $('voice-replies').checked;
  if (speak) expectVoice();
  state.socket.send(JSON.stringify({ type: 'chat', text, speak, ...voiceChoice() }));
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

// --- voice ---------------------------------------------------------------------

/** Kira's voice as this page plays it, and its microphone. */
const voice = {
  /** Playback: an AudioContext and its volume, made on first use. */
  context: null,
  gain: null,
  /** Sentences decoded and waiting, in order: {reply, index, buffer, track}. */
  queue: [],
  /** Decoding is asynchronous: each sentence waits for the one before. */
  decoding: Promise.resolve(),
  /** The sentence playing: {reply, index, source, startedAt}. */
  playing: null,
  /** The spoken reply this page asked for: {reply, finished} (sentences played). */
  current: null,
  /** Whether the next reply this page asked for is to be spoken. */
  expecting: false,
  /** Whether the controls took the server's settings yet. */
  configured: false,
  /** The microphone: {stream, context, handsFree}; `holding` while the talk button is held. */
  mic: null,
  holding: false,
  /** For tests and the curious. */
  sentencesPlayed: 0,
  maxMouth: 0,
  bargeIns: 0,
  heard: [],
  stages: null,
  interrupted: null,
  lastStop: null,
};

/** The server's voice settings (its flags and config file), shown once as the page's starting point. */
function showVoiceSettings(settings) {
  voice.configured = true;
  $('voice-name').value = settings.voice ?? '';
  $('voice-speed').value = settings.speed;
  $('voice-volume').value = settings.volume;
  for (const id of ['voice-speed', 'voice-volume']) $(id).dispatchEvent(new Event('input'));
}

/** The voice and speed this page asks for. */
function voiceChoice() {
  const choice = { speed: Number($('voice-speed').value) };
  if ($('voice-name').value) choice.voice = $('voice-name').value;
  return choice;
}

function voiceError(message) {
  $('voice-error').textContent = message;
  $('voice-error').hidden = !message;
}

/** The next reply this page asks for is spoken. */
function expectVoice() {
  voice.expecting = true;
}

function playback() {
  if (!voice.context) {
    voice.context = new AudioContext();
    voice.gain = voice.context.createGain();
    voice.gain.gain.value = Number($('voice-volume').value);
    voice.gain.connect(voice.context.destination);
  }
  if (voice.context.state === 'suspended') voice.context.resume();
  return voice.context;
}

function base64Buffer(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

/** A sentence of Kira's voice: decoded in turn, then played after the one before. */
function receiveAudio(event) {
  const current = voice.current;
  if (current?.reply !== event.reply) return;
  current.pending += 1;
  voice.decoding = voice.decoding.then(async () => {
    try {
      const buffer = await playback().decodeAudioData(base64Buffer(event.wav));
      // Stopped (or moved on from) while it was decoded.
      if (voice.current?.reply !== event.reply) return;
      voice.queue.push({ reply: event.reply, index: event.index, buffer, track: event.mouth });
      playNext();
    } catch (error) {
      current.pending -= 1;
      voiceError(`Cannot play Kira's voice: ${error.message ?? error}`);
      voiceDone();
    }
  });
}

/** Once the reply is written and every sentence of it played, she is done speaking. */
function voiceDone() {
  const current = voice.current;
  if (current && current.written && current.pending === 0 && !voice.playing) {
    voice.current = null;
    $('stop-voice').hidden = true;
  }
}

function playNext() {
  if (voice.playing || voice.queue.length === 0) return;
  const next = voice.queue.shift();
  const context = playback();
  const source = context.createBufferSource();
  source.buffer = next.buffer;
  source.connect(voice.gain);
  const startedAt = context.currentTime;
  source.start(startedAt);
  voice.playing = { reply: next.reply, index: next.index, source, startedAt };
  avatar.sayWith(next.track, () => context.currentTime - startedAt);
  // Workly moves the other avatars' mouths from this moment.
  state.socket?.send(JSON.stringify({ type: 'playing', reply: next.reply, index: next.index }));
  source.onended = () => {
    if (voice.playing?.source !== source) return;
    voice.playing = null;
    voice.sentencesPlayed += 1;
    if (voice.current?.reply === next.reply) {
      voice.current.finished = next.index + 1;
      voice.current.pending -= 1;
    }
    playNext();
    voiceDone();
  };
}

/** The person stops Kira (Esc, the stop button, or speaking over her): her voice stops now, and Workly hears where. */
function stopVoice() {
  const current = voice.current;
  if (!current) return false;
  const playing = voice.playing;
  const index = playing ? playing.index : current.finished;
  const seconds = playing ? voice.context.currentTime - playing.startedAt : 0;
  if (playing) {
    playing.source.onended = null;
    playing.source.stop();
  }
  voice.playing = null;
  voice.queue = [];
  voice.current = null;
  avatar.sayWith(null);
  $('stop-voice').hidden = true;
  voice.lastStop = { reply: current.reply, index, seconds };
  state.socket?.send(JSON.stringify({ type: 'stop', reply: current.reply, index, seconds }));
  return true;
}

/** Opens the microphone and streams it to Workly (16 kHz, 16-bit PCM). */
async function startListening(handsFree) {
  if (voice.mic || state.socket?.readyState !== WebSocket.OPEN) return;
  voiceError('');
  const mic = { handsFree, stream: null, context: null };
  voice.mic = mic;
  try {
    // The browser's echo cancellation keeps Kira's own voice out of the microphone.
    mic.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    mic.context = new AudioContext({ sampleRate: 16000 });
    await mic.context.audioWorklet.addModule('/app/capture.js');
    const node = new AudioWorkletNode(mic.context, 'workly-capture');
    state.socket.send(JSON.stringify({
      type: 'listen', hands_free: handsFree, language: $('voice-language').value, ...voiceChoice(),
    }));
    node.port.onmessage = ({ data }) => {
      if (voice.mic !== mic || state.socket?.readyState !== WebSocket.OPEN) return;
      const pcm = new Int16Array(data.length);
      for (let i = 0; i < data.length; i += 1) pcm[i] = Math.max(-1, Math.min(1, data[i])) * 32767;
      state.socket.send(pcm.buffer);
    };
    mic.context.createMediaStreamSource(mic.stream).connect(node);
    node.connect(mic.context.destination);
    $('talk').classList.toggle('listening', !handsFree);
    // Released before the microphone opened: stop at once.
    if (!handsFree && !voice.holding) stopListening();
  } catch (error) {
    closeMic(mic);
    voice.mic = null;
    voiceError(`The microphone is not available: ${error.message ?? error}`);
  }
}

function closeMic(mic) {
  mic.stream?.getTracks().forEach((track) => track.stop());
  mic.context?.close();
}

/** Closes the microphone; what it heard since the last pause is Kira's message. */
function stopListening() {
  const mic = voice.mic;
  if (!mic) return;
  voice.mic = null;
  closeMic(mic);
  $('talk').classList.remove('listening');
  $('hands-free').setAttribute('aria-pressed', 'false');
  if (state.socket?.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify({ type: 'listen_end' }));
  expectVoice();
}

$('talk').addEventListener('pointerdown', (event) => {
  event.preventDefault();
  voice.holding = true;
  expectVoice();
  startListening(false);
});
for (const name of ['pointerup', 'pointerleave', 'pointercancel']) {
  $('talk').addEventListener(name, () => {
    if (!voice.holding) return;
    voice.holding = false;
    if (voice.mic && !voice.mic.handsFree && voice.mic.context) stopListening();
  });
}
$('hands-free').addEventListener('click', () => {
  if (voice.mic?.handsFree) {
    stopListening();
    voice.expecting = false;
    return;
  }
  $('hands-free').setAttribute('aria-pressed', 'true');
  expectVoice();
  startListening(true);
});
$('stop-voice').addEventListener('click', stopVoice);
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') stopVoice();
});
$('voice-volume').addEventListener('input', () => {
  const volume = Number($('voice-volume').value);
  $('voice-volume-value').textContent = `${Math.round(volume * 100)} %`;
  if (voice.gain) voice.gain.gain.value = volume;
});
$('voice-volume-value').textContent = '100 %';
$('voice-speed').addEventListener('input', () => {
  $('voice-speed-value').textContent = `${Number($('voice-speed').value).toFixed(2)}×`;
});
$('voice-speed-value').textContent = '1.00×';

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
  if (voice.playing) voice.maxMouth = Math.max(voice.maxMouth, avatar.mouthOpen());
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
  voice: {
    get playing() { return voice.playing !== null; },
    /** Seconds into the sentence playing now (0 between sentences). */
    get playingSeconds() { return voice.playing ? voice.context.currentTime - voice.playing.startedAt : 0; },
    get speaking() { return voice.current !== null; },
    get listening() { return voice.mic !== null; },
    get sentencesPlayed() { return voice.sentencesPlayed; },
    get maxMouth() { return voice.maxMouth; },
    get bargeIns() { return voice.bargeIns; },
    get heard() { return voice.heard; },
    get stages() { return voice.stages; },
    get interrupted() { return voice.interrupted; },
    get lastStop() { return voice.lastStop; },
    mouthOpen: () => avatar.mouthOpen(),
    stop: stopVoice,
  },
};

// History first, so replies streaming in land after it.
start();
syncSliders();
loadAvatar('/avatar/default.vrm').catch((error) => console.error('default avatar', error));
