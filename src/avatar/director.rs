//! The director: from Kira's emotions and the reply's life cycle to avatar
//! commands.
//!
//! It raises the expression of each new emotion and lowers the one before (so
//! expressions never pile up), holds the face while Kira speaks, and eases
//! back to neutral a while after the reply. For renderers that neither blink
//! nor move the head on their own (VMC receivers) it also draws blinks and
//! idle head turns frame by frame, and the mouth while Kira's voice plays
//! (a [`MouthTrack`] per sentence, from the moment its audio starts); for
//! Unity it switches the app's own blink and head movement on instead.
//!
//! It is a plain state machine with no clock and no I/O: every method takes
//! the current `Instant`, returns the commands to send, and
//! [`Director::next_deadline`] says when [`Director::tick`] wants calling
//! next. Tests drive it with made-up instants.

use super::command::{Command, Expression, HeadMovement, HeadPose, TransitionSpeed, Unit};
use super::mouth::{MOUTH_FPS, Mouth, MouthTrack};
use crate::emotion::Emotion;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Blinks come at random intervals in this range (seconds), as in the Unity app.
const BLINK_INTERVAL_S: (f32, f32) = (2.0, 5.0);
/// Eyelids close in this long.
const BLINK_CLOSE: Duration = Duration::from_millis(50);
/// Eyes stay closed this long (the Unity app's value).
const BLINK_HOLD: Duration = Duration::from_millis(200);
/// Eyelids open in this long.
const BLINK_OPEN: Duration = Duration::from_millis(80);
/// One idle head turn, out and back.
const HEAD_TURN: Duration = Duration::from_secs(2);

/// Who blinks and moves the head while the avatar idles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleMotion {
    /// The renderer does it (Unity): the director only switches it on.
    Renderer,
    /// The director draws it frame by frame (VMC).
    Director,
}

/// The director's timings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirectorConfig {
    /// How fast expressions ease towards their targets.
    pub transition_speed: TransitionSpeed,
    /// How long the last emotion stays after a reply before the face eases
    /// back to neutral.
    pub linger: Duration,
    /// Idle head movement: how often and how far.
    pub head_movement: HeadMovement,
    /// Time between two frames of a blink or head turn the director draws.
    pub frame_interval: Duration,
}

impl Default for DirectorConfig {
    fn default() -> Self {
        Self {
            transition_speed: TransitionSpeed::UNITY_DEFAULT,
            linger: Duration::from_secs(2),
            head_movement: HeadMovement::UNITY_DEFAULT,
            frame_interval: Duration::from_micros(16_667),
        }
    }
}

/// A blink or head turn in progress or scheduled.
#[derive(Debug, Clone, Copy)]
struct Motion {
    next_at: Instant,
    started: Option<Instant>,
}

/// Turns emotion events and the reply's life cycle into commands.
#[derive(Debug)]
pub struct Director {
    config: DirectorConfig,
    idle: IdleMotion,
    shown: Option<Expression>,
    speaking: bool,
    neutral_at: Option<Instant>,
    blink: Motion,
    head: Motion,
    head_target: HeadPose,
    next_frame_at: Option<Instant>,
    random: SplitMix64,
    mouth: Option<Speaking>,
}

/// A sentence's mouth being played: its track, from when its audio started.
#[derive(Debug, Clone)]
struct Speaking {
    track: Arc<MouthTrack>,
    started: Instant,
    /// When the next frame is due.
    next_at: Instant,
}

impl Director {
    /// A director starting at `now`; `seed` makes blink and head timing
    /// reproducible.
    pub fn new(config: DirectorConfig, idle: IdleMotion, now: Instant, seed: u64) -> Self {
        let mut random = SplitMix64(seed);
        let blink = Motion { next_at: now + random.seconds(BLINK_INTERVAL_S), started: None };
        let head_range = (config.head_movement.min_interval_s(), config.head_movement.max_interval_s());
        let head = Motion { next_at: now + random.seconds(head_range), started: None };
        Self {
            config,
            idle,
            shown: None,
            speaking: false,
            neutral_at: None,
            blink,
            head,
            head_target: HeadPose::REST,
            next_frame_at: None,
            random,
            mouth: None,
        }
    }

    /// The commands that set the renderer up: the transition speed, and for
    /// Unity its own blink and head movement.
    pub fn start(&self) -> Vec<Command> {
        let mut commands = vec![Command::SetTransitionSpeed(self.config.transition_speed)];
        if self.idle == IdleMotion::Renderer {
            commands.push(Command::SetAutoBlink(true));
            commands.push(Command::SetAutoHeadMovement(self.config.head_movement));
        }
        commands
    }

    /// Kira now feels `emotion` at `intensity` (0..1; NaN counts as 0).
    pub fn emotion(&mut self, now: Instant, emotion: Emotion, intensity: f32) -> Vec<Command> {
        let value = Unit::saturating(intensity);
        let shown = Expression::of_emotion(emotion).filter(|_| value > Unit::ZERO);
        let mut commands = Vec::with_capacity(2);
        if let Some(previous) = self.shown.filter(|previous| Some(*previous) != shown) {
            commands.push(Command::set_expression(previous, Unit::ZERO));
        }
        if let Some(expression) = shown {
            commands.push(Command::set_expression(expression, value));
        }
        self.shown = shown;
        // Outside a reply an emotion is shown for a while, then eased away.
        self.neutral_at = if self.speaking || shown.is_none() { None } else { Some(now + self.config.linger) };
        commands
    }

    /// Kira started replying: hold the face until the reply is finished.
    pub fn reply_started(&mut self) {
        self.speaking = true;
        self.neutral_at = None;
    }

    /// The reply is finished: ease back to neutral after the linger time.
    pub fn reply_finished(&mut self, now: Instant) {
        self.speaking = false;
        self.neutral_at = self.shown.map(|_| now + self.config.linger);
    }

    /// Kira's voice starts a sentence at `started`: its mouth is drawn from
    /// `track` frame by frame from then, and closes at its end. Only where
    /// the director draws motion (VMC): the Unity app has no mouth command.
    pub fn speak(&mut self, track: Arc<MouthTrack>, started: Instant) {
        if self.idle == IdleMotion::Director {
            self.mouth = Some(Speaking { track, started, next_at: started });
        }
    }

    /// Kira's voice stopped (she was interrupted): the mouth closes now.
    pub fn hush(&mut self) -> Vec<Command> {
        match self.mouth.take() {
            Some(_) => vec![Command::SetMouth(Mouth::CLOSED)],
            None => Vec::new(),
        }
    }

    /// When [`Director::tick`] has something to do next, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let idle = match self.idle {
            IdleMotion::Renderer => None,
            IdleMotion::Director => Some(self.next_frame_at.unwrap_or_else(|| {
                let head = self.config.head_movement.enabled().then_some(self.head.next_at);
                head.map_or(self.blink.next_at, |head| head.min(self.blink.next_at))
            })),
        };
        let mouth = self.mouth.as_ref().map(|speaking| speaking.next_at);
        [self.neutral_at, idle, mouth].into_iter().flatten().min()
    }

    /// Does what is due at `now`: the return to neutral, the next frame of a
    /// blink or head turn.
    pub fn tick(&mut self, now: Instant) -> Vec<Command> {
        let mut commands = Vec::new();
        if self.neutral_at.is_some_and(|at| at <= now) {
            self.neutral_at = None;
            if let Some(expression) = self.shown.take() {
                commands.push(Command::set_expression(expression, Unit::ZERO));
            }
        }
        if self.idle == IdleMotion::Director {
            let blinking = self.blink_frame(now, &mut commands);
            let turning = self.head_frame(now, &mut commands);
            self.next_frame_at = (blinking || turning).then(|| now + self.config.frame_interval);
        }
        self.mouth_frame(now, &mut commands);
        commands
    }

    /// Draws the mouth at `now`, if a sentence is being said; closes it
    /// after the sentence's last frame.
    fn mouth_frame(&mut self, now: Instant, commands: &mut Vec<Command>) {
        let Some(speaking) = self.mouth.as_mut().filter(|speaking| speaking.next_at <= now) else { return };
        let elapsed = now.saturating_duration_since(speaking.started).as_secs_f64();
        if elapsed >= speaking.track.seconds() {
            self.mouth = None;
            commands.push(Command::SetMouth(Mouth::CLOSED));
            return;
        }
        commands.push(Command::SetMouth(speaking.track.at(elapsed)));
        // The next frame of the track, wherever this one fell.
        let frame = (elapsed * f64::from(MOUTH_FPS)).floor() + 1.0;
        speaking.next_at = speaking.started + Duration::from_secs_f64(frame / f64::from(MOUTH_FPS));
    }

    /// Draws the blink at `now`; true while one is under way.
    fn blink_frame(&mut self, now: Instant, commands: &mut Vec<Command>) -> bool {
        if self.blink.started.is_none() && now >= self.blink.next_at {
            self.blink.started = Some(self.blink.next_at);
        }
        let Some(started) = self.blink.started else { return false };
        let elapsed = now.saturating_duration_since(started);
        let closed = if elapsed < BLINK_CLOSE {
            smoothstep(elapsed.as_secs_f32() / BLINK_CLOSE.as_secs_f32())
        } else if elapsed < BLINK_CLOSE + BLINK_HOLD {
            1.0
        } else if elapsed < BLINK_CLOSE + BLINK_HOLD + BLINK_OPEN {
            1.0 - smoothstep((elapsed - BLINK_CLOSE - BLINK_HOLD).as_secs_f32() / BLINK_OPEN.as_secs_f32())
        } else {
            self.blink = Motion { next_at: now + self.random.seconds(BLINK_INTERVAL_S), started: None };
            0.0
        };
        commands.push(Command::set_expression(Expression::Blink, Unit::saturating(closed)));
        self.blink.started.is_some()
    }

    /// Draws the head turn at `now`; true while one is under way.
    fn head_frame(&mut self, now: Instant, commands: &mut Vec<Command>) -> bool {
        let head = self.config.head_movement;
        if !head.enabled() {
            return false;
        }
        if self.head.started.is_none() && now >= self.head.next_at {
            self.head.started = Some(self.head.next_at);
            let yaw = (self.random.unit() * 2.0 - 1.0) * head.max_angle_deg();
            let pitch = (self.random.unit() * 2.0 - 1.0) * head.max_angle_deg() / 2.0;
            self.head_target = HeadPose::new(yaw, pitch).unwrap_or(HeadPose::REST);
        }
        let Some(started) = self.head.started else { return false };
        let progress = now.saturating_duration_since(started).as_secs_f32() / HEAD_TURN.as_secs_f32();
        // Out and back: sin(pi * t) rises from 0 to 1 and returns to 0.
        let amount = if progress < 1.0 { (std::f32::consts::PI * progress).sin() } else { 0.0 };
        let pose = HeadPose::new(self.head_target.yaw_deg() * amount, self.head_target.pitch_deg() * amount)
            .unwrap_or(HeadPose::REST);
        commands.push(Command::SetHeadPose(pose));
        if progress >= 1.0 {
            let range = (head.min_interval_s(), head.max_interval_s());
            self.head = Motion { next_at: now + self.random.seconds(range), started: None };
        }
        self.head.started.is_some()
    }
}

fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// A small, fast, seedable generator for blink and head timing; nothing here
/// needs cryptographic or statistical quality.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..1`.
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// A duration uniform in `range` seconds.
    fn seconds(&mut self, (low, high): (f32, f32)) -> Duration {
        Duration::from_secs_f32(low + (high - low) * self.unit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of(commands: &[Command], wanted: Expression) -> Option<f32> {
        commands.iter().rev().find_map(|command| match command {
            Command::SetExpression { expression, value } if *expression == wanted => Some(value.get()),
            _ => None,
        })
    }

    #[test]
    fn a_new_emotion_lowers_the_previous_one() {
        let now = Instant::now();
        let mut director = Director::new(DirectorConfig::default(), IdleMotion::Renderer, now, 1);
        director.reply_started();
        let joy = director.emotion(now, Emotion::Joy, 0.8);
        assert_eq!(joy, [Command::set_expression(Expression::Joy, Unit::new(0.8).unwrap())]);
        let sorrow = director.emotion(now, Emotion::Sorrow, 0.5);
        assert_eq!(value_of(&sorrow, Expression::Joy), Some(0.0));
        assert_eq!(value_of(&sorrow, Expression::Sorrow), Some(0.5));
        // The same emotion again only changes its weight.
        assert_eq!(director.emotion(now, Emotion::Sorrow, 0.6).len(), 1);
        assert_eq!(
            director.emotion(now, Emotion::Neutral, 1.0),
            [Command::set_expression(Expression::Sorrow, Unit::ZERO)]
        );
    }

    #[test]
    fn the_face_holds_while_speaking_and_eases_back_after() {
        let start = Instant::now();
        let config = DirectorConfig { linger: Duration::from_secs(3), ..DirectorConfig::default() };
        let mut director = Director::new(config, IdleMotion::Renderer, start, 1);
        director.reply_started();
        director.emotion(start, Emotion::Fun, 1.0);
        assert_eq!(director.next_deadline(), None, "nothing to do while speaking");
        assert!(director.tick(start + Duration::from_secs(60)).is_empty());
        let finished = start + Duration::from_secs(61);
        director.reply_finished(finished);
        assert_eq!(director.next_deadline(), Some(finished + Duration::from_secs(3)));
        assert!(director.tick(finished + Duration::from_secs(2)).is_empty());
        let back = director.tick(finished + Duration::from_secs(3));
        assert_eq!(back, [Command::set_expression(Expression::Fun, Unit::ZERO)]);
        assert_eq!(director.next_deadline(), None);
    }

    #[test]
    fn unity_blinks_by_itself_vmc_is_drawn() {
        let now = Instant::now();
        let unity = Director::new(DirectorConfig::default(), IdleMotion::Renderer, now, 1);
        assert!(unity.start().contains(&Command::SetAutoBlink(true)));
        let vmc = Director::new(DirectorConfig::default(), IdleMotion::Director, now, 1);
        assert!(!vmc.start().iter().any(|c| matches!(c, Command::SetAutoBlink(_))));
    }

    #[test]
    fn blinks_close_hold_and_open_every_two_to_five_seconds() {
        let start = Instant::now();
        let config = DirectorConfig {
            head_movement: HeadMovement::new(false, 3.0, 7.0, 5.0).unwrap(),
            frame_interval: Duration::from_millis(10),
            ..DirectorConfig::default()
        };
        let mut director = Director::new(config, IdleMotion::Director, start, 7);
        let mut now = start;
        let mut blink_starts = Vec::new();
        let mut closed_since: Option<Instant> = None;
        let mut last = 0.0;
        while now < start + Duration::from_secs(30) {
            now = director.next_deadline().expect("idle motion always has a deadline");
            let Some(value) = value_of(&director.tick(now), Expression::Blink) else { continue };
            if last == 0.0 && value > 0.0 {
                blink_starts.push(now);
            }
            if value == 1.0 && closed_since.is_none() {
                closed_since = Some(now);
            }
            if value < 1.0 && last == 1.0 {
                let held = now - closed_since.take().unwrap();
                assert!(
                    held >= BLINK_HOLD - Duration::from_millis(10) && held <= BLINK_HOLD + Duration::from_millis(20)
                );
            }
            last = value;
        }
        assert!(blink_starts.len() >= 5, "{} blinks in 30 s", blink_starts.len());
        for pair in blink_starts.windows(2) {
            let gap = (pair[1] - pair[0]).as_secs_f32();
            assert!((2.0..5.5).contains(&gap), "gap {gap}");
        }
    }

    #[test]
    fn head_turns_go_out_and_back_within_the_angle() {
        let start = Instant::now();
        let config = DirectorConfig { frame_interval: Duration::from_millis(50), ..DirectorConfig::default() };
        let mut director = Director::new(config, IdleMotion::Director, start, 3);
        let mut poses = Vec::new();
        let mut now = start;
        while now < start + Duration::from_secs(20) {
            now = director.next_deadline().unwrap();
            poses.extend(director.tick(now).into_iter().filter_map(|command| match command {
                Command::SetHeadPose(pose) => Some(pose),
                _ => None,
            }));
        }
        assert!(poses.iter().any(|pose| pose.yaw_deg().abs() > 0.1), "the head moved");
        assert!(poses.iter().all(|pose| pose.yaw_deg().abs() <= 5.0 && pose.pitch_deg().abs() <= 2.5));
        assert!(poses.iter().filter(|pose| **pose == HeadPose::REST).count() >= 2, "and came back");
    }

    #[test]
    fn the_mouth_follows_the_track_from_the_audio_start_then_closes() {
        let start = Instant::now();
        let rate = 24_000;
        // A quarter second of sound, then a quarter of silence.
        let mut samples: Vec<f32> = (0..rate / 4).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
        samples.extend(vec![0.0; rate as usize / 4]);
        let track = Arc::new(MouthTrack::of_speech(&samples, rate, "a"));
        let unity = &mut Director::new(DirectorConfig::default(), IdleMotion::Renderer, start, 1);
        unity.speak(Arc::clone(&track), start);
        assert_eq!(unity.next_deadline(), None, "the Unity app draws no mouth");

        let config = DirectorConfig {
            head_movement: HeadMovement::new(false, 1.0, 1.0, 0.0).unwrap(),
            ..DirectorConfig::default()
        };
        let mut vmc = Director::new(config, IdleMotion::Director, start, 1);
        let audio_at = start + Duration::from_millis(100);
        vmc.speak(Arc::clone(&track), audio_at);
        assert_eq!(vmc.next_deadline(), Some(audio_at), "nothing before the audio starts");
        let mouth = |commands: Vec<Command>| {
            commands.into_iter().find_map(|command| match command {
                Command::SetMouth(mouth) => Some(mouth),
                _ => None,
            })
        };
        let at = |ms| audio_at + Duration::from_millis(ms);
        assert_eq!(mouth(vmc.tick(at(100))), Some(track.at(0.1)));
        assert!(track.at(0.1).open.get() > 0.5);
        let next = vmc.next_deadline().unwrap();
        assert!(next > at(100) && next <= at(117), "the next frame, 1/60 s on");
        assert_eq!(mouth(vmc.tick(at(400))).map(|mouth| mouth.open), Some(Unit::ZERO), "closed in the silence");
        assert_eq!(mouth(vmc.tick(at(600))), Some(Mouth::CLOSED), "closed at the end");
        assert!(mouth(vmc.tick(at(700))).is_none(), "and left alone after");

        vmc.speak(Arc::clone(&track), at(1000));
        assert_eq!(vmc.hush(), [Command::SetMouth(Mouth::CLOSED)], "an interruption closes it at once");
        assert!(vmc.hush().is_empty());
        assert!(mouth(vmc.tick(at(1100))).is_none());
    }
}
