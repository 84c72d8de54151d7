//! The VMC transport's OSC encoding: frames built from arbitrary avatar
//! commands (plus arbitrary extra messages) are packed by `vmc::pack` into
//! bundles with rosc and decoded back.
//!
//! Checks that decoding gives back exactly the messages packed, in order, that
//! every datagram is one bundle of plain messages no larger than the limit
//! (unless it holds a single message that alone exceeds it), and that every
//! float a frame sends is finite.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use rosc::{OscMessage, OscPacket, OscType};
use std::time::{Duration, Instant};
use workly::avatar::command::{Command, Expression, HeadMovement, HeadPose, ModelPath, TransitionSpeed, Unit};
use workly::avatar::vmc::{VmcFrames, pack};

/// An arbitrary command, or none where the checked types refuse the values.
fn command(u: &mut Unstructured) -> Result<Option<Command>> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => ModelPath::new(u.arbitrary()?).ok().map(Command::LoadModel),
        1 => Some(Command::UnloadModel),
        2 => Some(Command::set_expression(*u.choose(&Expression::ALL)?, Unit::saturating(u.arbitrary()?))),
        3 => Some(Command::ResetExpressions),
        4 => TransitionSpeed::new(u.arbitrary()?).ok().map(Command::SetTransitionSpeed),
        5 => Some(Command::SetAutoBlink(u.arbitrary()?)),
        6 => HeadMovement::new(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?, u.arbitrary()?)
            .ok()
            .map(Command::SetAutoHeadMovement),
        _ => HeadPose::new(u.arbitrary()?, u.arbitrary()?).ok().map(Command::SetHeadPose),
    })
}

/// OSC text: any string without NUL (OSC strings end at the first NUL).
fn osc_string(u: &mut Unstructured) -> Result<String> {
    Ok(u.arbitrary::<String>()?.replace('\0', ""))
}

/// An arbitrary message of the kinds VMC uses.
fn message(u: &mut Unstructured) -> Result<OscMessage> {
    let addr = format!("/{}", osc_string(u)?);
    let mut args = Vec::new();
    for _ in 0..u.int_in_range(0..=4u8)? {
        args.push(match u.int_in_range(0..=3u8)? {
            0 => OscType::Int(u.arbitrary()?),
            1 => OscType::Float(Some(u.arbitrary::<f32>()?).filter(|x| !x.is_nan()).unwrap_or(0.0)),
            2 => OscType::String(osc_string(u)?),
            _ => OscType::Bool(u.arbitrary()?),
        });
    }
    Ok(OscMessage { addr, args })
}

fn check(u: &mut Unstructured) -> Result<()> {
    let start = Instant::now();
    let mut now = start;
    let mut frames = VmcFrames::new(start);
    for _ in 0..u.int_in_range(0..=4u8)? {
        for _ in 0..u.int_in_range(0..=4u8)? {
            if let Some(command) = command(u)? {
                frames.apply(&command);
            }
        }
        now += Duration::from_millis(u.int_in_range(0..=2000)?);
        frames.advance(now);
    }
    let mut messages = frames.messages(now);
    for arg in messages.iter().flat_map(|message| &message.args) {
        if let OscType::Float(value) = arg {
            assert!(value.is_finite(), "{messages:?}");
        }
    }
    for _ in 0..u.int_in_range(0..=3u8)? {
        let at = u.int_in_range(0..=messages.len())?;
        messages.insert(at, message(u)?);
    }
    let max_bytes = u.int_in_range(0..=2000)?;

    let datagrams = pack(messages.clone(), max_bytes).expect("VMC messages always encode");
    let mut decoded = Vec::new();
    for datagram in &datagrams {
        let Ok((rest, OscPacket::Bundle(bundle))) = rosc::decoder::decode_udp(datagram) else {
            panic!("not a bundle: {datagram:?}")
        };
        assert!(rest.is_empty());
        assert!(datagram.len() <= max_bytes || bundle.content.len() == 1, "{} > {max_bytes}", datagram.len());
        for packet in bundle.content {
            let OscPacket::Message(message) = packet else { panic!("a nested bundle") };
            decoded.push(message);
        }
    }
    assert_eq!(decoded, messages);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = check(&mut Unstructured::new(data));
});
