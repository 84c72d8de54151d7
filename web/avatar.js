// Kira's avatar: a three.js scene with one VRM (0.x or 1.0, through three-vrm),
// whose expressions ease toward targets, which blinks, moves its head a little
// while idle, and looks toward the chat (or the pointer).

import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { VRMLoaderPlugin, VRMUtils } from '@pixiv/three-vrm';

// The emotions Workly's server names (its six, VRM 0.x style) and the VRM 1.0
// presets that show them. three-vrm renames VRM 0.x presets to the 1.0 names,
// so these apply to both kinds of model.
export const EMOTION_PRESETS = {
  joy: 'happy', happy: 'happy',
  angry: 'angry',
  sorrow: 'sad', sad: 'sad',
  fun: 'relaxed', relaxed: 'relaxed',
  surprised: 'surprised',
  neutral: null,
};
export const EMOTIONAL_PRESETS = ['happy', 'angry', 'sad', 'relaxed', 'surprised'];

const BLINK_SECONDS = 0.16;
/** The mouth's vowels as Workly sends them, and their VRM 1.0 expressions. */
const MOUTH_SHAPES = { a: 'aa', i: 'ih', u: 'ou', e: 'ee', o: 'oh' };

export class Avatar {
  constructor(canvas) {
    this.canvas = canvas;
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: true, alpha: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(24, 1, 0.05, 20);
    const key = new THREE.DirectionalLight(0xffffff, Math.PI);
    key.position.set(0.6, 1.2, 1.5);
    this.scene.add(key, new THREE.AmbientLight(0xffffff, 0.5));

    this.loader = new GLTFLoader();
    this.loader.register((parser) => new VRMLoaderPlugin(parser));

    this.vrm = null;
    // Current and target weights per expression name; the frame loop eases one to the other.
    this.weights = {};
    this.targets = {};
    this.settings = {
      speed: 4, holdSeconds: 6,
      blink: true, blinkIntervalSeconds: 4,
      headMotion: true, headAmount: 1,
      lookAt: true,
      // Rendering costs a laptop's battery (and, without a GPU, the CPU the model needs).
      maxFps: 60,
    };
    this.emotionUntil = 0;
    this.talk = 0;
    // The mouth of the sentence Kira's voice is playing: its track, and the clock of its audio.
    this.voiceMouth = null;
    this.nextBlink = 2;
    this.blinkStart = -1;
    this.time = 0;
    this.pointer = null;
    // Where "toward the chat" is: screen right of the avatar, at eye height.
    this.lookTarget = new THREE.Object3D();
    this.scene.add(this.lookTarget);
    this.lastFrameMs = performance.now();

    canvas.addEventListener('pointermove', (event) => {
      const rect = canvas.getBoundingClientRect();
      this.pointer = { x: ((event.clientX - rect.left) / rect.width) * 2 - 1, y: -(((event.clientY - rect.top) / rect.height) * 2 - 1) };
    });
    canvas.addEventListener('pointerleave', () => { this.pointer = null; });
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.resize();
    this.renderer.setAnimationLoop(() => this.frame());
  }

  resize() {
    const { clientWidth: width, clientHeight: height } = this.canvas;
    if (width === 0 || height === 0) return;
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
  }

  /** Loads a VRM from a URL or an ArrayBuffer, replacing the current one. */
  async load(source) {
    const gltf = typeof source === 'string'
      ? await this.loader.loadAsync(source)
      : await this.loader.parseAsync(source, '');
    const vrm = gltf.userData.vrm;
    if (!vrm) throw new Error('this file is glTF but not VRM (no VRM extension)');
    VRMUtils.removeUnnecessaryVertices(gltf.scene);
    // VRM 0.x models face -Z; turn them to face the camera like VRM 1.0 ones.
    VRMUtils.rotateVRM0(vrm);
    if (this.vrm) {
      this.scene.remove(this.vrm.scene);
      VRMUtils.deepDispose(this.vrm.scene);
    }
    this.vrm = vrm;
    this.scene.add(vrm.scene);
    if (vrm.lookAt) vrm.lookAt.target = this.lookTarget;
    this.relaxArms();
    this.weights = {};
    this.targets = {};
    for (const name of this.expressionNames()) {
      this.weights[name] = 0;
      this.targets[name] = 0;
    }
    this.frameHead();
    return vrm;
  }

  /** The avatar's expression names (VRM 1.0 names for presets). */
  expressionNames() {
    return this.vrm?.expressionManager?.expressions.map((expression) => expression.expressionName) ?? [];
  }

  /** The name, and whether the model is VRM 0.x or 1.0. */
  describe() {
    const meta = this.vrm?.meta;
    if (!meta) return { name: null, version: null };
    return { name: meta.name ?? meta.title ?? 'unnamed', version: meta.metaVersion === '0' ? '0.x' : '1.0' };
  }

  /** Shows `emotion` (a server emotion or a VRM preset name) at `intensity` 0..1. */
  showEmotion(emotion, intensity = 1) {
    if (!(emotion in EMOTION_PRESETS)) return false;
    const preset = EMOTION_PRESETS[emotion];
    for (const name of EMOTIONAL_PRESETS) this.targets[name] = 0;
    if (preset) this.targets[preset] = Math.max(0, Math.min(1, Number(intensity) || 0));
    this.emotionUntil = this.time + this.settings.holdSeconds;
    return true;
  }

  /** Whether an emotion (or a slider setting) is still being held. */
  holding() {
    return this.time <= this.emotionUntil;
  }

  /** Sets one expression's target weight by hand (the sliders). */
  setTarget(name, weight) {
    this.targets[name] = weight;
    this.emotionUntil = this.time + this.settings.holdSeconds;
  }

  /** Kira is writing something: open the mouth for a moment. */
  speak() {
    this.talk = 1;
  }

  /**
   * Kira's voice plays a sentence: the mouth follows `track` ({fps, open,
   * vowels}) at `clock()` seconds into its audio, so it keeps time with
   * what is heard whatever the frame rate. `null` closes the mouth.
   */
  sayWith(track, clock) {
    this.voiceMouth = track ? { track, clock } : null;
    this.talk = 0;
  }

  /** The current expression weights, {name: weight}. */
  expressionWeights() {
    return Object.fromEntries(this.expressionNames().map((name) => [name, this.vrm.expressionManager.getValue(name) ?? 0]));
  }

  // Arms hang down instead of the T-pose a VRM is modelled in.
  relaxArms() {
    const humanoid = this.vrm.humanoid;
    humanoid?.getNormalizedBoneNode('leftUpperArm')?.rotation.set(0, 0, -1.2);
    humanoid?.getNormalizedBoneNode('rightUpperArm')?.rotation.set(0, 0, 1.2);
  }

  // Points the camera at the head, whatever the model's size.
  frameHead() {
    this.vrm.scene.updateMatrixWorld(true);
    const head = this.vrm.humanoid?.getNormalizedBoneNode('head');
    const position = new THREE.Vector3();
    if (head) {
      head.getWorldPosition(position);
    } else {
      new THREE.Box3().setFromObject(this.vrm.scene).getCenter(position);
    }
    this.headHeight = position.y;
    this.camera.position.set(0, position.y + 0.12, 1.5);
    this.camera.lookAt(0, position.y + 0.07, 0);
  }

  frame() {
    const now = performance.now();
    // A little slack, so a 60 Hz display is not halved by timer jitter.
    if (now - this.lastFrameMs < 1000 / this.settings.maxFps - 2) return;
    const delta = Math.min((now - this.lastFrameMs) / 1000, 0.25);
    this.lastFrameMs = now;
    this.time += delta;
    if (this.vrm) {
      this.animateExpressions(delta);
      this.animateHead();
      this.vrm.update(delta);
    }
    this.renderer.render(this.scene, this.camera);
  }

  animateExpressions(delta) {
    const manager = this.vrm.expressionManager;
    if (!manager) return;
    // Back to neutral once an emotion has been held long enough.
    if (this.time > this.emotionUntil) {
      for (const name of EMOTIONAL_PRESETS) this.targets[name] = 0;
    }
    // Exponential easing: the same smoothness at any frame rate.
    const ease = 1 - Math.exp(-this.settings.speed * delta);
    for (const name of Object.keys(this.targets)) {
      const current = this.weights[name] ?? 0;
      this.weights[name] = current + (this.targets[name] - current) * ease;
      manager.setValue(name, this.weights[name]);
    }
    if (this.voiceMouth) {
      this.animateVoiceMouth(manager);
    } else {
      // Writing without a voice: the mouth flaps while tokens arrive and closes when they stop.
      this.talk = Math.max(0, this.talk - delta * 2.5);
      if (this.talk > 0 || this.weights.aa) {
        const open = this.talk > 0 ? this.talk * (0.35 + 0.35 * Math.abs(Math.sin(this.time * 18))) : 0;
        manager.setValue('aa', open);
        this.weights.aa = open;
      }
    }
    this.animateBlink(delta, manager);
  }

  /** The voice's mouth at this frame: one vowel open as wide as the audio is loud. */
  animateVoiceMouth(manager) {
    const { track, clock } = this.voiceMouth;
    const frame = Math.floor(clock() * track.fps);
    const ended = frame >= track.open.length;
    const open = frame >= 0 && !ended ? track.open[frame] : 0;
    const vowel = track.vowels[frame] ?? 'a';
    for (const [letter, name] of Object.entries(MOUTH_SHAPES)) {
      const weight = letter === vowel ? open : 0;
      manager.setValue(name, weight);
      this.weights[name] = weight;
    }
    if (ended) this.voiceMouth = null;
  }

  /** How open the mouth is now (its five vowels together). */
  mouthOpen() {
    return Object.values(MOUTH_SHAPES).reduce((sum, name) => sum + (this.vrm?.expressionManager?.getValue(name) ?? 0), 0);
  }

  animateBlink(delta, manager) {
    if (!this.settings.blink) {
      manager.setValue('blink', this.targets.blink ?? 0);
      return;
    }
    if (this.blinkStart < 0 && this.time >= this.nextBlink) this.blinkStart = this.time;
    let blink = 0;
    if (this.blinkStart >= 0) {
      const t = (this.time - this.blinkStart) / BLINK_SECONDS;
      blink = t < 1 ? Math.sin(Math.PI * t) : 0;
      if (t >= 1) {
        this.blinkStart = -1;
        // Irregular blinks look alive; a fixed beat looks mechanical.
        const interval = this.settings.blinkIntervalSeconds;
        this.nextBlink = this.time + interval * (0.5 + Math.random());
      }
    }
    manager.setValue('blink', Math.max(blink, this.targets.blink ?? 0));
  }

  animateHead() {
    const humanoid = this.vrm.humanoid;
    const head = humanoid?.getNormalizedBoneNode('head');
    const neck = humanoid?.getNormalizedBoneNode('neck');
    const chest = humanoid?.getNormalizedBoneNode('chest') ?? humanoid?.getNormalizedBoneNode('spine');
    const t = this.time;
    const amount = this.settings.headMotion ? this.settings.headAmount : 0;
    // Incommensurate sines: slow drift that never visibly repeats.
    let yaw = amount * (0.05 * Math.sin(t * 0.5) + 0.02 * Math.sin(t * 1.3));
    let pitch = amount * (0.03 * Math.sin(t * 0.7 + 1) + 0.01 * Math.sin(t * 1.9));
    const roll = amount * 0.035 * Math.sin(t * 0.4 + 2);

    const height = this.headHeight ?? 1.4;
    if (this.pointer) {
      this.lookTarget.position.set(this.pointer.x * 1.2, height + this.pointer.y * 0.6, 1.2);
    } else {
      this.lookTarget.position.set(0.7, height - 0.05, 1.2);
    }
    if (this.settings.lookAt) {
      // The head turns a little toward what the eyes look at.
      const target = this.lookTarget.position;
      yaw += Math.atan2(target.x, target.z) * 0.35;
      pitch += -Math.atan2(target.y - height, target.z) * 0.25;
      if (this.vrm.lookAt) this.vrm.lookAt.target = this.lookTarget;
    } else if (this.vrm.lookAt) {
      this.vrm.lookAt.target = null;
      this.vrm.lookAt.yaw = 0;
      this.vrm.lookAt.pitch = 0;
    }
    head?.rotation.set(pitch * 0.6, yaw * 0.6, roll * 0.6);
    neck?.rotation.set(pitch * 0.4, yaw * 0.4, roll * 0.4);
    // Breathing.
    chest?.rotation.set(amount * 0.012 * Math.sin(t * 1.6), 0, 0);
  }
}
