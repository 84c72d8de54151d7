//! Faults, each against the real binary on the real model with a real SQLite
//! file: `kill -9` mid-reply, SIGTERM mid-reply (server and terminal chat),
//! the data directory's disk filling up, the model file vanishing or being
//! replaced while served, and a broken config file at start. Nothing reported
//! complete may be lost, and the database must pass `PRAGMA integrity_check`.

mod common;

use common::server::{Events, ends_reply, read_until, ready_events, reply_text, say, start_in};
use common::{assert_bad_input, assert_success, stored, text, workly_in};

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The most a SIGTERM may take to stop Workly, by the reliability contract.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// A message that makes a long reply, so a fault can land in the middle of it.
const LONG: &str = "Write a very long story about a dragon and a lighthouse.";

/// Asserts the database in `data` passes SQLite's own integrity check.
fn assert_intact(data: &Path) {
    let connection = rusqlite::Connection::open(data.join("workly.db")).unwrap();
    let verdict: String = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(verdict, "ok");
}

fn exchange(user: &str, reply: &str) -> Vec<(String, String)> {
    vec![("user".to_owned(), user.to_owned()), ("assistant".to_owned(), reply.to_owned())]
}

/// One complete page turn: the reply's text and its `reply_done` event.
fn turn(socket: &mut Events, message: &str) -> (String, serde_json::Value) {
    say(socket, message);
    let events = read_until(socket, ends_reply);
    let end = events.last().unwrap().clone();
    assert_eq!(end["type"], "reply_done", "{end}");
    (reply_text(&events), end)
}

/// Starts a page turn and returns once its first text arrived.
fn start_long_turn(socket: &mut Events) -> Vec<serde_json::Value> {
    say(socket, LONG);
    read_until(socket, |event| event["type"] == "token" && !event["text"].as_str().unwrap().is_empty())
}

fn health(address: SocketAddr) -> u16 {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET /health HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    raw.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap()
}

#[test]
fn kill_9_mid_reply_loses_no_completed_turn() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let flags = ["--no-unity", "--conversation", "crash"];
    let mut server = start_in(&data, dir.path(), &flags);
    let mut socket = ready_events(server.address);
    let first = "Hi Kira, my cat is called Miso.";
    let (reply, _) = turn(&mut socket, first);
    start_long_turn(&mut socket);
    server.signal("KILL");
    assert!(server.exit_within(STOP_LIMIT).is_some());

    assert_intact(&data);
    assert_eq!(stored(&data, "crash"), exchange(first, &reply), "the completed turn, and nothing half-done");
    // A restart continues the conversation, and the page chats on.
    let server = start_in(&data, dir.path(), &flags);
    assert!(server.resuming.contains("`crash` (2 earlier messages)"), "{}", server.resuming);
    let mut socket = ready_events(server.address);
    let (again, _) = turn(&mut socket, "Do you remember my cat?");
    assert_eq!(stored(&data, "crash")[2..], exchange("Do you remember my cat?", &again));
}

#[test]
fn sigterm_mid_reply_cuts_it_saves_the_turn_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start_in(&data, dir.path(), &["--no-unity", "--conversation", "stop"]);
    let mut socket = ready_events(server.address);
    let mut events = start_long_turn(&mut socket);
    server.signal("TERM");
    // Every client hears the reply end, cut, and then the socket closes.
    events.extend(read_until(&mut socket, ends_reply));
    let end = events.last().unwrap();
    assert_eq!(end["type"], "reply_done", "{end}");
    assert_eq!(end["finish_reason"], "cancelled", "{end}");
    let status = server.exit_within(STOP_LIMIT).expect("stopped within the limit");
    assert!(status.success(), "{status}");
    loop {
        match socket.read() {
            Ok(tungstenite::Message::Close(frame)) => {
                assert_eq!(u16::from(frame.expect("a reason").code), 1001, "going away");
                break;
            }
            Ok(_) => {}
            Err(error) => panic!("the socket was not closed properly: {error}"),
        }
    }

    assert_intact(&data);
    assert_eq!(stored(&data, "stop"), exchange(LONG, &reply_text(&events)));
}

#[test]
fn sigterm_mid_reply_in_the_terminal_chat_saves_the_turn_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = workly_in(dir.path())
        .args(["chat", "--conversation", "quit", "--max-tokens", "4000", "--model"])
        .arg(common::small_model())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{LONG}").unwrap();
    stdin.flush().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut shown = vec![0u8; 1];
    stdout.read_exact(&mut shown).expect("the reply starts");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + STOP_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "still running {STOP_LIMIT:?} after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    stdout.read_to_end(&mut shown).unwrap();

    assert_intact(dir.path());
    let messages = stored(dir.path(), "quit");
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0], ("user".to_owned(), LONG.to_owned()));
    // What was stored is what the person read.
    assert_eq!(messages[1].1.trim_end(), text(&shown).trim_end());
}

/// A size-limited tmpfs, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts one of 4 MiB (room for the database, not for the filler), or
    /// says the test is skipped when this machine does not let us (not root).
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            eprintln!("skipped: mounting a size-limited tmpfs needs root");
        }
        mounted.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with `filler` until no byte fits.
    fn fill(&self, filler: &Path) {
        let mut file = std::fs::File::create(filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).and_then(|()| file.sync_all()).is_ok() {}
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_fails_the_turn_clearly_keeps_serving_and_recovers() {
    let Some(disk) = SmallDisk::mount() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let data = disk.path().join("data");
    let server = start_in(&data, scratch.path(), &["--no-unity", "--conversation", "full"]);
    let mut socket = ready_events(server.address);
    let (first, _) = turn(&mut socket, "Hello Kira!");

    let filler = disk.path().join("filler");
    disk.fill(&filler);
    say(&mut socket, "Tell me about the sea.");
    let events = read_until(&mut socket, ends_reply);
    let failure = events.last().unwrap();
    assert_eq!(failure["type"], "error", "{failure}");
    let message = failure["message"].as_str().unwrap();
    assert!(message.contains("could not be saved") && message.contains("full"), "{message}");
    assert_eq!(failure["reply"], events[0]["reply"], "the error names the reply");
    assert_eq!(health(server.address), 200, "still serving");

    std::fs::remove_file(&filler).unwrap();
    let (third, _) = turn(&mut socket, "Hello again!");
    drop(server);
    assert_intact(&data);
    let mut expected = exchange("Hello Kira!", &first);
    expected.extend(exchange("Hello again!", &third));
    assert_eq!(stored(&data, "full"), expected, "the failed turn is not half-stored; the others are whole");
}

#[test]
fn a_full_disk_in_the_terminal_chat_loses_that_exchange_not_the_chat() {
    let Some(disk) = SmallDisk::mount() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let data = disk.path().join("data");
    let mut child = workly_in(&data)
        .env("WORKLY_CACHE_DIR", scratch.path())
        .args(["chat", "--conversation", "full", "--json", "--max-tokens", "24", "--temperature", "0", "--model"])
        .arg(common::small_model())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut turns = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut say = |message: &str| -> serde_json::Value {
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
        serde_json::from_str(&turns.next().expect("a turn").unwrap()).unwrap()
    };
    let first = say("Hello Kira!");
    assert_eq!(first["stored"], true, "{first}");
    let filler = disk.path().join("filler");
    disk.fill(&filler);
    let second = say("Tell me about the sea.");
    assert_eq!(second["stored"], false, "{second}");
    std::fs::remove_file(&filler).unwrap();
    let third = say("Hello again!");
    assert_eq!(third["stored"], true, "{third}");
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_success(&output);
    let stderr = text(&output.stderr);
    assert_eq!(stderr.matches("could not be saved").count(), 1, "{stderr}");

    assert_intact(&data);
    // (`text` is the reply as the model wrote it; the store keeps it as shown.)
    let messages = stored(&data, "full");
    let roles: Vec<&str> = messages.iter().map(|(role, _)| role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!((messages[0].1.as_str(), messages[2].1.as_str()), ("Hello Kira!", "Hello again!"));
}

/// A whole (not streamed) chat completion; its HTTP status and body.
fn complete(address: SocketAddr, content: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"messages": [{"role": "user", "content": content}], "max_tokens": 8}).to_string();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap(), serde_json::from_str(body).unwrap())
}

#[test]
fn the_model_file_vanishing_or_replaced_while_serving_changes_nothing_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let model: PathBuf = dir.path().join("kira.gguf");
    std::fs::copy(common::small_model(), &model).unwrap();
    let data = dir.path().join("data");
    let flags = ["--no-unity", "--model", model.to_str().unwrap()];
    let server = start_in(&data, dir.path(), &flags);
    ready_events(server.address);
    assert_eq!(complete(server.address, "Hi").0, 200);

    std::fs::remove_file(&model).unwrap();
    let (status, reply) = complete(server.address, "Still there?");
    assert_eq!(status, 200, "{reply}");
    // Replaced by something else (a new file, as an editor or `mv` leaves it).
    std::fs::write(&model, b"not a model").unwrap();
    let (status, reply) = complete(server.address, "And now?");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["model"], "kira");
    assert_eq!(health(server.address), 200);
    drop(server);

    // A restart reads the file again, and says what is wrong with it.
    let output =
        workly_in(&data).args(["serve", "--port", "0", "--model"]).arg(&model).stdin(Stdio::null()).output().unwrap();
    assert_bad_input(&output, &["kira.gguf"]);
}

#[test]
fn serve_refuses_a_broken_config_file_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "context_size = \"big\"\n").unwrap();
    let output = workly_in(dir.path()).args(["serve", "--port", "0"]).stdin(Stdio::null()).output().unwrap();
    assert_bad_input(&output, &["config.toml"]);
}
