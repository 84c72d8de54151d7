//! The VMC transport: the avatar's expressions and head as OSC bundles over
//! UDP to VMC receivers (VSeeFace, VMagicMirror, EVMC4U, ...), per
//! `specs/vmc.md`.
//!
//! VMC receivers show blendshape values as given, so this transport plays the
//! part of the Unity controller: it keeps every expression's target and eases
//! the shown value towards it at the transition speed (blinks stay crisp: the
//! director draws them). Each frame carries the whole state (both VRM 0.x and
//! 1.0 names, then one `Apply`) in bundles that fit one datagram, every frame
//! while something moves and a few times a second when idle, so a lost
//! datagram heals itself. It owns the socket and the frame clock, not what the
//! expressions should be.

use super::Link;
use super::batcher::Batcher;
use super::command::{Command, Expression};
use super::mouth::{Mouth, Vowel};
use super::state::{AvatarState, ModelState};
use rosc::{OscBundle, OscMessage, OscPacket, OscType};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// The VMC receivers' usual port.
pub const DEFAULT_PORT: u16 = 39539;
/// Largest datagram sent: an Ethernet MTU less the IP and UDP headers, so no
/// datagram is fragmented.
pub const MAX_DATAGRAM_BYTES: usize = 1500 - 20 - 8;
/// How often the whole state is resent while nothing moves (4 Hz).
pub const IDLE_RESEND: Duration = Duration::from_millis(250);
/// An OSC bundle's header: `#bundle\0` and the time tag.
const BUNDLE_HEADER_BYTES: usize = 16;
/// Shown values closer than this to their target snap to it, as in Unity.
const SNAP: f32 = 0.001;

/// Where and how fast to send.
#[derive(Debug, Clone)]
pub struct VmcSettings {
    /// The receivers.
    pub targets: Vec<SocketAddr>,
    /// Time between frames while something moves.
    pub frame_interval: Duration,
    /// Whether that interval also caps frames triggered by new commands
    /// (`--avatar-fps`).
    pub paced: bool,
}

/// The state the receivers are shown, eased towards the commanded targets.
#[derive(Debug, Clone)]
pub struct VmcFrames {
    targets: AvatarState,
    shown: [f32; Expression::ALL.len()],
    started: Instant,
    last_advance: Instant,
}

impl VmcFrames {
    /// Nothing shown yet, clock starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self { targets: AvatarState::default(), shown: [0.0; Expression::ALL.len()], started: now, last_advance: now }
    }

    /// Takes a command's effect on the targets.
    pub fn apply(&mut self, command: &Command) {
        self.targets.apply(command);
    }

    /// Moves the shown values towards their targets as Unity does
    /// (`lerp(shown, target, dt * speed)`, snapping when close); true while
    /// some value still moves.
    pub fn advance(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last_advance).as_secs_f32();
        self.last_advance = now;
        let speed = self.targets.transition_speed.map_or(2.0, |speed| speed.get());
        let step = (dt * speed).clamp(0.0, 1.0);
        let mut moving = false;
        for expression in Expression::ALL {
            let target = self.targets.target(expression).get();
            let shown = &mut self.shown[expression.index()];
            *shown = if expression.is_eased() { *shown + (target - *shown) * step } else { target };
            if (target - *shown).abs() < SNAP {
                *shown = target;
            } else {
                moving = true;
            }
        }
        moving
    }

    /// The value shown for `expression`.
    pub fn shown(&self, expression: Expression) -> f32 {
        self.shown[expression.index()]
    }

    /// One frame's messages: alive and time, the head, every blendshape under
    /// both names, then `Apply`.
    pub fn messages(&self, now: Instant) -> Vec<OscMessage> {
        let message = |addr: &str, args: Vec<OscType>| OscMessage { addr: addr.to_owned(), args };
        let loaded = i32::from(self.targets.model != ModelState::Unloaded);
        let mut messages = vec![
            message("/VMC/Ext/OK", vec![OscType::Int(loaded)]),
            message("/VMC/Ext/T", vec![OscType::Float(now.saturating_duration_since(self.started).as_secs_f32())]),
        ];
        if let Some(pose) = self.targets.head_pose {
            let [x, y, z, w] = quaternion(pose.yaw_deg(), pose.pitch_deg());
            let args = [0.0, 0.0, 0.0, x, y, z, w].into_iter().map(OscType::Float);
            messages.push(message(
                "/VMC/Ext/Bone/Pos",
                std::iter::once(OscType::String("Head".into())).chain(args).collect(),
            ));
        }
        for expression in Expression::ALL {
            for name in expression.vmc_names() {
                let args = vec![OscType::String(name.to_owned()), OscType::Float(self.shown(expression))];
                messages.push(message("/VMC/Ext/Blend/Val", args));
            }
        }
        // The mouth is drawn frame by frame from the voice: shown as it is.
        let mouth = self.targets.mouth.unwrap_or(Mouth::CLOSED);
        for vowel in Vowel::ALL {
            for name in vowel.vmc_names() {
                let args = vec![OscType::String(name.to_owned()), OscType::Float(mouth.weight(vowel))];
                messages.push(message("/VMC/Ext/Blend/Val", args));
            }
        }
        messages.push(message("/VMC/Ext/Blend/Apply", Vec::new()));
        messages
    }
}

/// Unity's rotation for a yaw about Y then a pitch about X, as `[x, y, z, w]`.
fn quaternion(yaw_deg: f32, pitch_deg: f32) -> [f32; 4] {
    let (sy, cy) = (yaw_deg.to_radians() / 2.0).sin_cos();
    let (sp, cp) = (pitch_deg.to_radians() / 2.0).sin_cos();
    [cy * sp, sy * cp, -sy * sp, cy * cp]
}

/// Packs `messages`, in order, into as few bundles of at most `max_bytes`
/// as they fit in; returns each bundle's bytes.
pub fn pack(messages: Vec<OscMessage>, max_bytes: usize) -> Result<Vec<Vec<u8>>, rosc::OscError> {
    let bundle = |content| OscPacket::Bundle(OscBundle { timetag: (0, 1).into(), content });
    let mut datagrams = Vec::new();
    let mut content = Vec::new();
    let mut size = BUNDLE_HEADER_BYTES;
    for message in messages {
        let packet = OscPacket::Message(message);
        // Each element is prefixed by its size in the bundle.
        let element = rosc::encoder::encode(&packet)?.len() + 4;
        if !content.is_empty() && size + element > max_bytes {
            datagrams.push(rosc::encoder::encode(&bundle(std::mem::take(&mut content)))?);
            size = BUNDLE_HEADER_BYTES;
        }
        size += element;
        content.push(packet);
    }
    if !content.is_empty() {
        datagrams.push(rosc::encoder::encode(&bundle(content))?);
    }
    Ok(datagrams)
}

/// Runs the VMC transport until the bridge stops it.
pub(crate) async fn run(settings: VmcSettings, batcher: &Batcher, link: &Link) {
    let any: SocketAddr = match settings.targets.first() {
        Some(SocketAddr::V6(_)) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        _ => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
    };
    let socket = match UdpSocket::bind(any).await {
        Ok(socket) => socket,
        Err(error) => return link.failed(format!("cannot open a UDP socket for VMC: {error}")),
    };
    link.connected();
    let mut frames = VmcFrames::new(Instant::now());
    let mut batch = Vec::new();
    let mut next_frame = Instant::now();
    let mut last_frame: Option<Instant> = None;
    loop {
        tokio::select! {
            () = batcher.take(&mut batch) => {}
            () = tokio::time::sleep_until(next_frame.into()) => {}
        }
        if let Some(last) = last_frame.filter(|_| settings.paced) {
            tokio::time::sleep_until((last + settings.frame_interval).into()).await;
            batcher.try_take(&mut batch);
        }
        batch.iter().for_each(|command| frames.apply(command));
        let now = Instant::now();
        let moving = frames.advance(now);
        link.set_moving(moving);
        let sent = send_frame(&socket, &settings.targets, &frames, now, link).await;
        batcher.record_frame(sent);
        batcher.finished(batch.len(), 0);
        batch.clear();
        last_frame = Some(now);
        next_frame = now + if moving { settings.frame_interval } else { IDLE_RESEND };
    }
}

/// Sends one frame to every target; returns the bytes sent.
async fn send_frame(
    socket: &UdpSocket,
    targets: &[SocketAddr],
    frames: &VmcFrames,
    now: Instant,
    link: &Link,
) -> usize {
    let datagrams = match pack(frames.messages(now), MAX_DATAGRAM_BYTES) {
        Ok(datagrams) => datagrams,
        Err(error) => {
            link.failed(format!("cannot encode a VMC frame: {error}"));
            return 0;
        }
    };
    let mut bytes = 0;
    for target in targets {
        for datagram in &datagrams {
            // UDP is fire-and-forget: a receiver that is not there yet is
            // not an error, the next frame will reach it once it listens.
            match socket.send_to(datagram, target).await {
                Ok(sent) => bytes += sent,
                Err(error) => link.failed(format!("cannot send VMC to {target}: {error}")),
            }
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avatar::command::{TransitionSpeed, Unit};

    #[test]
    fn eases_like_unity_and_blinks_at_once() {
        let start = Instant::now();
        let mut frames = VmcFrames::new(start);
        frames.apply(&Command::SetTransitionSpeed(TransitionSpeed::new(2.0).unwrap()));
        frames.apply(&Command::set_expression(Expression::Joy, Unit::ONE));
        frames.apply(&Command::set_expression(Expression::Blink, Unit::ONE));
        assert!(frames.advance(start + Duration::from_millis(100)));
        assert!((frames.shown(Expression::Joy) - 0.2).abs() < 1e-4);
        assert_eq!(frames.shown(Expression::Blink), 1.0);
        let mut now = start;
        while frames.advance(now) {
            now += Duration::from_millis(16);
        }
        assert_eq!(frames.shown(Expression::Joy), 1.0);
    }

    #[test]
    fn bundles_fit_a_datagram_and_end_with_apply() {
        let frames = VmcFrames::new(Instant::now());
        let messages = frames.messages(Instant::now());
        assert_eq!(messages.len(), 2 + 2 * Expression::ALL.len() + 2 * Vowel::ALL.len() + 1);
        let datagrams = pack(messages.clone(), 300).unwrap();
        assert!(datagrams.len() > 1);
        let mut decoded = Vec::new();
        for datagram in &datagrams {
            assert!(datagram.len() <= 300, "{}", datagram.len());
            let Ok((_, OscPacket::Bundle(bundle))) = rosc::decoder::decode_udp(datagram) else { panic!("a bundle") };
            decoded.extend(bundle.content);
        }
        let decoded: Vec<_> = decoded
            .into_iter()
            .map(|packet| match packet {
                OscPacket::Message(message) => message,
                OscPacket::Bundle(_) => panic!("no nested bundles"),
            })
            .collect();
        assert_eq!(decoded, messages);
    }

    #[test]
    fn head_yaw_turns_about_y() {
        let [x, y, z, w] = quaternion(90.0, 0.0);
        assert!(x.abs() < 1e-6 && z.abs() < 1e-6);
        assert!((y - w).abs() < 1e-6 && (y - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }
}
