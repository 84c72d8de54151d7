//! The avatar bridge over real sockets: the reference peer in-process and as
//! `workly avatar peer`, batching and coalescing, a peer killed and restarted
//! mid-stream, a stalled peer, a Unity that sends garbage, VMC datagrams
//! decoded with `rosc`, and the Unity encoder checked against the Unity
//! parser's rules.

mod common;

use common::assert_bad_input;
use proptest::prelude::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workly::avatar::command::{HeadMovement, ModelPath, TransitionSpeed};
use workly::avatar::mouth::{MouthTrack, Vowel};
use workly::avatar::peer::{self, parse_line};
use workly::avatar::state::AvatarState;
use workly::avatar::unity::Reconnect;
use workly::avatar::{AvatarBridge, BridgeConfig, Command, DirectorConfig, Expression, Unit};
use workly::emotion::Emotion;

const WAIT: Duration = Duration::from_secs(10);

fn set(expression: Expression, value: f32) -> Command {
    Command::set_expression(expression, Unit::new(value).unwrap())
}

fn unity_config(address: SocketAddr) -> BridgeConfig {
    BridgeConfig {
        unity: Some(address),
        vmc: Vec::new(),
        fps: None,
        director: None,
        model: None,
        reconnect: Reconnect { first: Duration::from_millis(20), max: Duration::from_millis(200) },
        tap: None,
    }
}

/// Waits until `condition` holds, failing the test after [`WAIT`].
fn eventually(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "condition not met in {WAIT:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The reference peer on its own thread and runtime, recording what it applies.
struct InProcessPeer {
    address: SocketAddr,
    applied: Arc<Mutex<Vec<Command>>>,
    state: Arc<Mutex<AvatarState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessPeer {
    fn start(address: SocketAddr) -> Self {
        let applied = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(Mutex::new(AvatarState::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound) = std::sync::mpsc::channel();
        let (applied_in, state_in) = (Arc::clone(&applied), Arc::clone(&state));
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(address).await.unwrap();
                bound_tx.send(listener.local_addr().unwrap()).unwrap();
                peer::serve(listener, async { _ = stopped.await }, |command, now| {
                    applied_in.lock().unwrap().push(command.clone());
                    *state_in.lock().unwrap() = now.clone();
                })
                .await;
            });
        });
        let address = bound.recv().unwrap();
        Self { address, applied, state, stop: Some(stop), thread: Some(thread) }
    }

    fn applied(&self) -> Vec<Command> {
        self.applied.lock().unwrap().clone()
    }

    fn state(&self) -> AvatarState {
        self.state.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what the peer applied.
    fn wait_until(&self, done: impl Fn(&[Command], &AvatarState) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(&self.applied(), &self.state()) {
            assert!(Instant::now() < deadline, "peer applied only {:?}", self.applied());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for InProcessPeer {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
    }
}

#[test]
fn a_burst_leaves_in_one_write_and_is_applied_in_order() {
    let peer = InProcessPeer::start("127.0.0.1:0".parse().unwrap());
    let bridge = AvatarBridge::start(unity_config(peer.address)).unwrap();
    let burst: Vec<Command> =
        Expression::ALL.iter().map(|e| set(*e, 0.5)).chain([Command::SetAutoBlink(false)]).collect();
    bridge.send_all(&burst);
    bridge.flush(WAIT).unwrap();
    peer.wait_until(|applied, _| applied.len() == burst.len());
    assert_eq!(peer.applied(), burst);
    let stats = &bridge.stats()[0];
    assert_eq!((stats.batch.frames, stats.batch.commands_sent), (1, 10), "{stats:?}");
    assert!(stats.connected);
    // Unity's ack on connect was read and counted, not choked on.
    eventually(|| bridge.stats()[0].replies_received > 0);
}

#[test]
fn commands_wait_coalesced_while_unity_is_absent() {
    let address = free_port();
    let bridge = AvatarBridge::start(unity_config(address)).unwrap();
    let started = Instant::now();
    for step in 0..10_000 {
        bridge.send(set(Expression::Joy, step as f32 / 10_000.0));
        bridge.send(Command::SetAutoBlink(step % 2 == 0));
    }
    assert!(started.elapsed() < Duration::from_secs(2), "sending must not wait for Unity");
    assert!(bridge.pending() <= 2, "latest state wins: {}", bridge.pending());
    assert!(!bridge.stats()[0].connected);
    eventually(|| bridge.stats()[0].last_error.as_deref().unwrap_or("").contains("cannot connect to Unity"));

    let peer = InProcessPeer::start(address);
    bridge.flush(WAIT).unwrap();
    peer.wait_until(|applied, _| applied.len() == 2);
    assert_eq!(peer.applied(), [set(Expression::Joy, 0.9999), Command::SetAutoBlink(false)]);
    assert_eq!(bridge.stats()[0].batch.commands_coalesced, 19_998);
}

#[test]
fn a_stalled_peer_blocks_neither_the_sender_nor_memory() {
    // Accepts and never reads: the socket buffers fill, the writer waits.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let bridge = AvatarBridge::start(unity_config(listener.local_addr().unwrap())).unwrap();
    let (_stalled, _) = listener.accept().unwrap();
    let started = Instant::now();
    for step in 0..1_000_000 {
        let expression = Expression::ALL[step % Expression::ALL.len()];
        bridge.send(set(expression, (step % 100) as f32 / 100.0));
    }
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(bridge.pending() <= Expression::ALL.len());
    let stats = &bridge.stats()[0];
    assert!(stats.batch.commands_coalesced > 0, "the socket buffer should have filled: {stats:?}");
}

#[test]
fn a_lone_command_leaves_from_the_senders_own_call_when_the_connection_is_idle() {
    let peer = InProcessPeer::start("127.0.0.1:0".parse().unwrap());
    let bridge = AvatarBridge::start(unity_config(peer.address)).unwrap();
    bridge.send(set(Expression::Joy, 0.0));
    bridge.flush(WAIT).unwrap();
    // Let the bridge's task park once it has nothing left to do.
    std::thread::sleep(Duration::from_millis(50));
    for step in 1..=100 {
        bridge.send(set(Expression::Joy, step as f32 / 100.0));
        // Written by the call itself: nothing waits for the bridge's thread.
        let stats = &bridge.stats()[0];
        assert_eq!((stats.batch.commands_sent, stats.batch.frames), (step + 1, step + 1), "{stats:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    peer.wait_until(|applied, _| applied.len() == 101);
    assert_eq!(peer.state().target(Expression::Joy), Unit::new(1.0).unwrap());
}

#[test]
fn a_peer_that_stalls_then_reads_gets_whole_lines_and_the_latest_state() {
    // Accepts and reads nothing at first: inline writes fill the socket, the
    // rest of a write cut short waits for the bridge's task.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let bridge = AvatarBridge::start(unity_config(listener.local_addr().unwrap())).unwrap();
    let (stalled, _) = listener.accept().unwrap();
    let mut last = [0.0f32; Expression::ALL.len()];
    for step in 0..1_000_000 {
        let expression = Expression::ALL[step % Expression::ALL.len()];
        last[expression.index()] = (step % 1000) as f32 / 1000.0;
        bridge.send(set(expression, last[expression.index()]));
    }
    let reader = std::thread::spawn(move || {
        let mut state = AvatarState::default();
        let mut lines = 0u64;
        for line in BufReader::new(stalled).split(b'\n') {
            let command = parse_line(&line.unwrap()).expect("every line whole and parsable");
            state.apply(&command);
            lines += 1;
        }
        (state, lines)
    });
    bridge.flush(WAIT).unwrap();
    let stats = bridge.stats()[0].batch;
    drop(bridge);
    let (state, lines) = reader.join().unwrap();
    assert_eq!(lines, stats.commands_sent, "{stats:?}");
    assert!(stats.commands_coalesced > 0, "the socket buffer should have filled: {stats:?}");
    for expression in Expression::ALL {
        assert_eq!(state.target(expression).get(), last[expression.index()], "{expression:?}");
    }
}

#[test]
fn a_peer_killed_mid_stream_gets_the_state_back_after_restart() {
    let first = InProcessPeer::start("127.0.0.1:0".parse().unwrap());
    let address = first.address;
    let bridge = AvatarBridge::start(unity_config(address)).unwrap();
    let setup = [
        Command::LoadModel(ModelPath::new("kira.vrm").unwrap()),
        Command::SetTransitionSpeed(TransitionSpeed::new(4.0).unwrap()),
        Command::SetAutoBlink(true),
        Command::SetAutoHeadMovement(HeadMovement::new(true, 2.0, 6.0, 4.0).unwrap()),
    ];
    bridge.send_all(&setup);
    let stream = |from: usize, to: usize| {
        for step in from..to {
            bridge.send(set(Expression::ALL[step % 5], (step % 100) as f32 / 100.0));
            if step % 64 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    stream(0, 2_000);
    first.wait_until(|applied, _| applied.len() > 100);
    drop(first);
    stream(2_000, 4_000);
    let second = InProcessPeer::start(address);
    stream(4_000, 6_000);
    bridge.flush(WAIT).unwrap();

    let mut expected = AvatarState::default();
    setup.iter().for_each(|command| expected.apply(command));
    for step in 5_995..6_000 {
        expected.apply(&set(Expression::ALL[step % 5], (step % 100) as f32 / 100.0));
    }
    second.wait_until(|_, state| *state == expected);
    assert_eq!(second.applied()[0], setup[0], "the model is loaded first");
    let stats = &bridge.stats()[0];
    assert!(stats.connects >= 2 && stats.batch.commands_resent >= 4, "{stats:?}");
}

/// A fake Unity that sends `reply` on connect, then records the lines it gets.
fn hostile_unity(reply: Vec<u8>, close_after_reply: bool) -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            if index == 0 || !close_after_reply {
                let _ = stream.write_all(&reply);
            }
            if index == 0 && close_after_reply {
                continue; // dropping the stream closes it after half a line
            }
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    return;
                }
            }
        }
    });
    (address, lines)
}

fn expect_line(lines: &std::sync::mpsc::Receiver<String>, wanted: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| panic!("no line {wanted:?}"));
        if line == wanted {
            return;
        }
    }
}

#[test]
fn garbage_from_unity_is_read_and_dropped() {
    let joy = r#"{"command":"set_expression","data":{"name":"joy","value":0.5}}"#;
    let mut binary: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    binary.extend_from_slice(b"\n\0\xff{}\n");
    let endless_line = vec![b'x'; 10 * 1024 * 1024];
    for reply in [binary, endless_line] {
        let (address, lines) = hostile_unity(reply, false);
        let bridge = AvatarBridge::start(unity_config(address)).unwrap();
        bridge.send(set(Expression::Joy, 0.5));
        expect_line(&lines, joy);
        bridge.flush(WAIT).unwrap();
        assert!(bridge.stats()[0].connected);
    }
}

#[test]
fn half_a_line_then_close_is_a_reconnect() {
    let (address, lines) = hostile_unity(br#"{"type":"respo"#.to_vec(), true);
    let bridge = AvatarBridge::start(unity_config(address)).unwrap();
    bridge.send(Command::SetAutoBlink(true));
    expect_line(&lines, r#"{"command":"set_auto_blink","data":{"enabled":true}}"#);
    assert!(bridge.stats()[0].connects >= 2);
}

#[test]
fn the_peer_survives_garbage_and_keeps_parsing() {
    let peer = InProcessPeer::start("127.0.0.1:0".parse().unwrap());
    let mut stream = std::net::TcpStream::connect(peer.address).unwrap();
    stream.write_all(&[0xff, 0, 0x80, b'\n']).unwrap();
    stream.write_all(&vec![b'{'; 1024 * 1024]).unwrap();
    stream.write_all(b"\n{\"command\":\"set_expression\",\"data\":{\"name\":\"fun\",\"value\":1}}\n").unwrap();
    peer.wait_until(|applied, _| applied == [set(Expression::Fun, 1.0)]);
}

/// Workly's own binary.
fn workly() -> Process {
    let mut command = Process::new(env!("CARGO_BIN_EXE_workly"));
    command.env_remove("RUST_LOG");
    command
}

/// `workly avatar peer` on `port`, with the address it listens on.
struct ChildPeer {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    address: SocketAddr,
}

impl ChildPeer {
    fn start(port: u16) -> Self {
        let mut child = workly()
            .args(["avatar", "peer", "--port", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut banner = String::new();
        stderr.read_line(&mut banner).unwrap();
        let address = banner.trim().rsplit(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("{banner}"));
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || stdout.lines().map_while(Result::ok).try_for_each(|line| tx.send(line)));
        Self { child, lines, address }
    }
}

impl Drop for ChildPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn avatar_send_reaches_the_peer_program() {
    let peer = ChildPeer::start(0);
    let unity = peer.address.to_string();
    for words in [&["set_expression", "joy", "0.8"][..], &["set_auto_head_movement", "true", "2", "6", "4"]] {
        let output = workly().args(["avatar", "send", "--unity", &unity]).args(words).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        expect_line(&peer.lines, &words.join(" "));
    }
}

#[test]
fn avatar_send_takes_its_flags_after_the_command_too() {
    let peer = ChildPeer::start(0);
    let unity = peer.address.to_string();
    // As the README writes it: the command's words first, then the flags.
    let output = workly().args(["avatar", "send", "set_expression", "joy", "0.8", "--unity", &unity]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    expect_line(&peer.lines, "set_expression joy 0.8");
    // Flags on both sides of the words, and a negative number among them.
    let output = workly()
        .args([
            "avatar",
            "send",
            "--unity",
            &unity,
            "set_auto_head_movement",
            "true",
            "2",
            "6",
            "4",
            "--avatar-fps",
            "30",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    expect_line(&peer.lines, "set_auto_head_movement true 2 6 4");
    let send = |args: &[&str]| workly().args(["avatar", "send"]).args(args).output().unwrap();
    assert_bad_input(&send(&["set_head_pose", "5", "-2", "--unity", &unity]), &["VMC receivers only"]);
}

#[test]
fn the_peer_program_killed_and_restarted_gets_the_state_again() {
    let first = ChildPeer::start(0);
    let port = first.address.port();
    let bridge = AvatarBridge::start(unity_config(first.address)).unwrap();
    bridge.send_all(&[Command::LoadModel(ModelPath::new("kira.vrm").unwrap()), set(Expression::Joy, 0.7)]);
    expect_line(&first.lines, "set_expression joy 0.7");
    drop(first);
    bridge.send(set(Expression::Sorrow, 0.25));
    let second = ChildPeer::start(port);
    expect_line(&second.lines, "load_model kira.vrm");
    expect_line(&second.lines, "set_expression joy 0.7");
    expect_line(&second.lines, "set_expression sorrow 0.25");
}

#[test]
fn avatar_send_refuses_bad_input_with_exit_2() {
    let send = |args: &[&str]| workly().args(["avatar", "send"]).args(args).output().unwrap();
    assert_bad_input(&send(&["set_expression", "joy", "NaN"]), &["finite number"]);
    assert_bad_input(&send(&["set_expression", "grin", "1"]), &["unknown expression"]);
    assert_bad_input(&send(&["dance"]), &["unknown avatar command"]);
    assert_bad_input(&send(&["--no-unity", "reset_expressions"]), &["--vmc"]);
    assert_bad_input(&send(&["--unity", "nowhere:notaport", "reset_expressions"]), &["bad address"]);
    assert_bad_input(&send(&["load_model", "a\"b.vrm"]), &["double quote"]);
    assert_bad_input(&send(&["set_head_pose", "5", "-2"]), &["VMC receivers only"]);
    assert_bad_input(&send(&["set_mouth", "a", "0.5"]), &["set_mouth goes to VMC receivers only"]);
    assert_bad_input(&send(&["set_mouth", "x", "0.5"]), &["VOWEL (a, i, u, e or o)"]);
}

#[test]
fn avatar_send_without_unity_fails_with_exit_1() {
    let output =
        workly().args(["avatar", "send", "--unity", &free_port().to_string(), "unload_model"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to Unity"), "{stderr}");
}

/// Every OSC message in `datagram`, checking each is a bundle under 1500 bytes.
fn decode(datagram: &[u8]) -> Vec<rosc::OscMessage> {
    assert!(datagram.len() < 1500, "{} bytes", datagram.len());
    match rosc::decoder::decode_udp(datagram).unwrap().1 {
        rosc::OscPacket::Bundle(bundle) => bundle
            .content
            .into_iter()
            .map(|packet| match packet {
                rosc::OscPacket::Message(message) => message,
                rosc::OscPacket::Bundle(_) => panic!("nested bundle"),
            })
            .collect(),
        rosc::OscPacket::Message(message) => panic!("bare message {message:?}"),
    }
}

/// The frames a VMC receiver got, each as its blendshape values.
fn vmc_frames(receiver: &UdpSocket, until: impl Fn(&[Vec<(String, f32)>]) -> bool) -> Vec<Vec<(String, f32)>> {
    let mut frames = Vec::new();
    let mut values = Vec::new();
    let mut buffer = [0u8; 2048];
    let started = Instant::now();
    while !until(&frames) {
        assert!(started.elapsed() < WAIT, "the frames never came: {frames:?}");
        let Ok(read) = receiver.recv(&mut buffer) else { continue };
        for message in decode(&buffer[..read]) {
            match (message.addr.as_str(), &message.args[..]) {
                ("/VMC/Ext/Blend/Val", [rosc::OscType::String(name), rosc::OscType::Float(value)]) => {
                    values.push((name.clone(), *value));
                }
                ("/VMC/Ext/Blend/Apply", _) => frames.push(std::mem::take(&mut values)),
                _ => {}
            }
        }
    }
    frames
}

#[test]
fn the_mouth_follows_kira_s_voice_on_vmc_and_closes_after() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let config = BridgeConfig {
        unity: None,
        vmc: vec![receiver.local_addr().unwrap()],
        director: Some(DirectorConfig {
            head_movement: HeadMovement::new(false, 1.0, 1.0, 0.0).unwrap(),
            ..DirectorConfig::default()
        }),
        ..unity_config(free_port())
    };
    let bridge = AvatarBridge::start(config).unwrap();
    // A third of a second of voice saying "o", then a third of silence.
    let rate = 24_000;
    let mut samples: Vec<f32> = (0..rate / 3).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
    samples.extend(vec![0.0; rate as usize / 3]);
    let track = std::sync::Arc::new(MouthTrack::of_speech(&samples, rate, "o"));
    bridge.speak(&track);
    let value = |frame: &[(String, f32)], name: &str| frame.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    let opened = |frames: &[Vec<(String, f32)>]| frames.iter().any(|frame| value(frame, "O") > Some(0.5));
    let frames = vmc_frames(&receiver, |frames| {
        opened(frames) && frames.last().is_some_and(|frame| value(frame, "O") == Some(0.0))
    });
    let open = frames.iter().filter(|frame| value(frame, "O") > Some(0.0)).count();
    // Every frame of the voiced third: about 20 at 60 frames a second.
    assert!(open >= 10, "{open} frames with the mouth open");
    for frame in &frames {
        assert_eq!(value(frame, "O"), value(frame, "oh"), "VRM 0 and 1 names alike");
        assert_eq!(value(frame, "A"), Some(0.0), "only the vowel said");
    }
    // Interrupted: the mouth shuts at once.
    bridge.speak(&track);
    vmc_frames(&receiver, opened);
    bridge.hush();
    vmc_frames(&receiver, |frames| frames.last().is_some_and(|frame| value(frame, "O") == Some(0.0)));
}

#[test]
fn vmc_frames_carry_every_blendshape_then_apply() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let config = BridgeConfig {
        unity: None,
        vmc: vec![receiver.local_addr().unwrap()],
        director: Some(DirectorConfig {
            transition_speed: TransitionSpeed::new(10.0).unwrap(),
            ..DirectorConfig::default()
        }),
        ..unity_config(free_port())
    };
    let bridge = AvatarBridge::start(config).unwrap();
    bridge.reply_started();
    bridge.emotion(Emotion::Joy, 1.0);

    let mut frame = Vec::new();
    let mut joy_values = Vec::new();
    let mut buffer = [0u8; 2048];
    let started = Instant::now();
    while joy_values.last() != Some(&1.0) {
        assert!(started.elapsed() < WAIT, "joy never reached 1: {joy_values:?}");
        let read = receiver.recv(&mut buffer).unwrap();
        for message in decode(&buffer[..read]) {
            if message.addr != "/VMC/Ext/Blend/Apply" {
                frame.push(message);
                continue;
            }
            assert!(message.args.is_empty());
            let values: Vec<(String, f32)> = frame
                .iter()
                .filter(|m| m.addr == "/VMC/Ext/Blend/Val")
                .map(|m| match &m.args[..] {
                    [rosc::OscType::String(name), rosc::OscType::Float(value)] => (name.clone(), *value),
                    other => panic!("Val args {other:?}"),
                })
                .collect();
            assert_eq!(
                values.len(),
                2 * (Expression::ALL.len() + Vowel::ALL.len()),
                "every blendshape under both names"
            );
            let value = |name: &str| values.iter().find(|(n, _)| n == name).map(|(_, v)| *v).unwrap();
            assert_eq!(value("Joy"), value("happy"));
            assert_eq!(value("Blink_L"), value("blinkLeft"));
            // Nobody speaks: the mouth stays shut.
            assert_eq!((value("A"), value("aa"), value("O"), value("oh")), (0.0, 0.0, 0.0, 0.0));
            joy_values.push(value("Joy"));
            for message in &frame {
                assert!(
                    ["/VMC/Ext/Blend/Val", "/VMC/Ext/OK", "/VMC/Ext/T", "/VMC/Ext/Bone/Pos"]
                        .contains(&message.addr.as_str()),
                    "{}",
                    message.addr
                );
            }
            frame.clear();
        }
    }
    assert!(joy_values.windows(2).all(|pair| pair[0] <= pair[1]), "joy eases in: {joy_values:?}");
    assert!(joy_values.iter().any(|v| *v > 0.0 && *v < 1.0), "and is not snapped: {joy_values:?}");
    // The frame counter moves once the datagrams are out, so it may trail the receiver a moment.
    eventually(|| bridge.stats()[0].batch.frames as usize >= joy_values.len());
}

fn any_command() -> impl Strategy<Value = Option<Command>> {
    let number = prop_oneof![any::<f32>(), -2.0f32..3.0, Just(f32::NAN), Just(f32::INFINITY), Just(1e-7f32)];
    let path = prop_oneof![
        any::<String>(),
        "[a-z/\\\\ .]{1,20}",
        Just("x\"set_expression\"y".to_owned()),
        Just("\"load_model\"".to_owned()),
        Just("a\nb".to_owned())
    ];
    prop_oneof![
        path.prop_map(|path| ModelPath::new(&path).ok().map(Command::LoadModel)),
        Just(Some(Command::UnloadModel)),
        (0..Expression::ALL.len(), number.clone())
            .prop_map(|(i, v)| Unit::new(v).ok().map(|v| Command::set_expression(Expression::ALL[i], v))),
        Just(Some(Command::ResetExpressions)),
        number.clone().prop_map(|v| TransitionSpeed::new(v).ok().map(Command::SetTransitionSpeed)),
        any::<bool>().prop_map(|b| Some(Command::SetAutoBlink(b))),
        (any::<bool>(), number.clone(), number.clone(), number)
            .prop_map(|(e, a, b, c)| HeadMovement::new(e, a, b, c).ok().map(Command::SetAutoHeadMovement)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the caller passes, what reaches the wire is one valid JSON
    /// line that Unity's substring parser reads back as the same command.
    #[test]
    fn unity_reads_back_exactly_what_was_encoded(command in any_command()) {
        let Some(command) = command else { return Ok(()) };
        let mut line = Vec::new();
        prop_assert!(command.encode_unity(&mut line));
        prop_assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        prop_assert_eq!(line.last(), Some(&b'\n'));
        let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
        prop_assert_eq!(json["command"].as_str(), Some(command.name()));
        prop_assert!(json["data"].is_object());
        prop_assert_eq!(parse_line(&line[..line.len() - 1]), Ok(command.clone()));
        // Several lines in one write parse the same as one by one.
        let mut state = AvatarState::default();
        let mut splitter = peer::LineSplitter::new(peer::MAX_LINE_BYTES);
        let twice = [line.clone(), line].concat();
        splitter.feed(&twice[..7], |l| state.apply(&parse_line(l).unwrap()));
        splitter.feed(&twice[7..], |l| state.apply(&parse_line(l).unwrap()));
        let mut expected = AvatarState::default();
        expected.apply(&command);
        prop_assert_eq!(state, expected);
    }

    /// A model path is refused, or travels intact (with `/` for `\`).
    #[test]
    fn model_paths_are_refused_or_read_back(path in any::<String>()) {
        if let Ok(checked) = ModelPath::new(&path) {
            let mut line = Vec::new();
            Command::LoadModel(checked).encode_unity(&mut line);
            let Ok(Command::LoadModel(read)) = parse_line(&line[..line.len() - 1]) else {
                return Err(TestCaseError::fail("not read back as load_model"));
            };
            prop_assert_eq!(read.as_str(), path.replace('\\', "/"));
        }
    }
}

#[test]
fn vmc_resends_the_whole_state_a_few_times_a_second_when_idle() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let config = BridgeConfig { unity: None, vmc: vec![receiver.local_addr().unwrap()], ..unity_config(free_port()) };
    let bridge = AvatarBridge::start(config).unwrap();
    bridge.send(set(Expression::Surprised, 0.6));
    bridge.send(Command::SetTransitionSpeed(TransitionSpeed::new(10.0).unwrap()));
    bridge.flush(WAIT).unwrap();
    // Let the easing finish, then count frames for one second.
    std::thread::sleep(Duration::from_secs(1));
    let mut buffer = [0u8; 2048];
    receiver.set_nonblocking(true).unwrap();
    while receiver.recv(&mut buffer).is_ok() {}
    receiver.set_nonblocking(false).unwrap();
    let started = Instant::now();
    let mut frames = 0;
    while started.elapsed() < Duration::from_secs(1) {
        let read = receiver.recv(&mut buffer).unwrap();
        let messages = decode(&buffer[..read]);
        frames += messages.iter().filter(|m| m.addr == "/VMC/Ext/Blend/Apply").count();
        let surprised = messages.iter().find(|m| m.args.first() == Some(&rosc::OscType::String("Surprised".into())));
        assert_eq!(surprised.unwrap().args[1], rosc::OscType::Float(0.6));
    }
    assert!((2..=6).contains(&frames), "{frames} frames in an idle second");
}

#[test]
fn avatar_fps_caps_the_write_rate() {
    let peer = InProcessPeer::start("127.0.0.1:0".parse().unwrap());
    let bridge = AvatarBridge::start(BridgeConfig { fps: Some(10), ..unity_config(peer.address) }).unwrap();
    bridge.send(Command::ResetExpressions);
    bridge.flush(WAIT).unwrap();
    let started = Instant::now();
    for step in 0..60 {
        bridge.send(set(Expression::ALL[step % Expression::ALL.len()], 0.5));
        std::thread::sleep(Duration::from_millis(5));
    }
    bridge.flush(WAIT).unwrap();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let writes = bridge.stats()[0].batch.frames - 1;
    assert!(writes <= elapsed_ms / 100 + 2, "{writes} writes in {elapsed_ms} ms at 10 per second");
    assert!(writes >= 2, "{writes} writes");
    let state = peer.state();
    assert!(Expression::ALL.iter().all(|e| state.target(*e) == Unit::new(0.5).unwrap()), "{state:?}");
}

#[test]
fn avatar_send_to_vmc_stays_until_the_value_has_eased_in() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver.set_read_timeout(Some(WAIT)).unwrap();
    let vmc = receiver.local_addr().unwrap().to_string();
    let mut child = workly()
        .args(["avatar", "send", "--no-unity", "--vmc", &vmc, "set_expression", "joy", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buffer = [0u8; 2048];
    let mut last_joy = 0.0;
    while last_joy != 1.0 {
        let read = receiver.recv(&mut buffer).expect("frames until joy is shown");
        for message in decode(&buffer[..read]) {
            if let [rosc::OscType::String(name), rosc::OscType::Float(value)] = &message.args[..]
                && name == "happy"
            {
                last_joy = *value;
            }
        }
    }
    assert!(child.wait().unwrap().success());
}

#[test]
fn emotions_drive_unity_through_the_director() {
    let peer = InProcessPeer::start("127.0.0.1:0".parse().unwrap());
    let director = DirectorConfig { linger: Duration::from_millis(100), ..DirectorConfig::default() };
    let bridge = AvatarBridge::start(BridgeConfig { director: Some(director), ..unity_config(peer.address) }).unwrap();
    // On start: the transition speed, and Unity's own blink and head movement.
    peer.wait_until(|applied, _| applied.len() == 3);
    let state = peer.state();
    assert_eq!((state.auto_blink, state.auto_head_movement), (Some(true), Some(HeadMovement::UNITY_DEFAULT)));

    bridge.reply_started();
    bridge.emotion(Emotion::Joy, 0.8);
    bridge.emotion(Emotion::Sorrow, 0.5);
    peer.wait_until(|_, state| state.target(Expression::Sorrow) == Unit::new(0.5).unwrap());
    assert_eq!(peer.state().target(Expression::Joy), Unit::ZERO, "the previous expression is lowered");
    // Held while speaking, well past the linger time.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(peer.state().target(Expression::Sorrow), Unit::new(0.5).unwrap());
    bridge.reply_finished();
    peer.wait_until(|_, state| state.target(Expression::Sorrow) == Unit::ZERO);
}
