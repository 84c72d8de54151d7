//! Back-ends for the tests of Workly in front of another engine: the real
//! llama-cpp-python server the test set-up installs, and a small server that
//! misbehaves on cue (each fault a remote can have, one per request).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The real llama-cpp-python OpenAI-compatible server on the default model,
/// killed when dropped.
pub struct LlamaCppPython {
    child: Child,
    /// Its API's base URL, `http://127.0.0.1:PORT/v1`.
    pub url: String,
}

impl Drop for LlamaCppPython {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LlamaCppPython {
    /// Starts it on a free loopback port with a `context`-token context;
    /// returns once it lists its model.
    pub fn start(context: u32) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(super::baseline_python())
            .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", &context.to_string(), "--n_threads", "2", "--model_alias", "smollm2"])
            .arg("--model")
            .arg(super::default_model())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("llama-cpp-python's server starts");
        let server = Self { child, url: format!("http://127.0.0.1:{port}/v1") };
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if ureq::get(&format!("{}/models", server.url)).call().is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("llama-cpp-python's server never answered");
    }
}

/// What the misbehaving server does with one chat request.
#[derive(Debug, Clone)]
pub enum Act {
    /// Streams this reply word by word, as a well-behaved server does.
    Reply(&'static str),
    /// Streams a word every 100 ms for a minute (to be cancelled).
    Endless,
    /// Answers this status with an OpenAI error body.
    Status(u16),
    /// Streams two words, then closes the connection mid-reply.
    Cut,
    /// Answers 200 with a web page.
    WebPage,
    /// Streams a word, then an error event.
    FailMidway,
    /// Reads the request and never answers.
    Silent,
}

/// A small OpenAI-compatible server that plays `acts`, one per chat request
/// (the last one again once they are used up). It lists one model, `fake`;
/// with a key, it refuses every request without it (401).
pub struct Misbehaving {
    /// Its API's base URL.
    pub url: String,
    /// Chat requests received.
    pub requests: Arc<AtomicUsize>,
    /// Whether a client hung up while a reply was streaming.
    pub hung_up: Arc<AtomicBool>,
    /// The bodies of the chat requests received.
    pub bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    stopping: Arc<AtomicBool>,
    address: std::net::SocketAddr,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl Misbehaving {
    /// Listens on a free loopback port.
    pub fn start(acts: Vec<Act>, key: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let hung_up = Arc::new(AtomicBool::new(false));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let shared = (Arc::clone(&requests), Arc::clone(&hung_up), Arc::clone(&bodies), Arc::clone(&stopping));
        let accepting = std::thread::spawn(move || {
            let (requests, hung_up, bodies, stopping) = shared;
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (acts, requests, hung_up, bodies) =
                    (acts.clone(), Arc::clone(&requests), Arc::clone(&hung_up), Arc::clone(&bodies));
                std::thread::spawn(move || serve(stream, &acts, key, &requests, &hung_up, &bodies));
            }
        });
        Self {
            url: format!("http://{address}/v1"),
            requests,
            hung_up,
            bodies,
            stopping,
            address,
            accepting: Some(accepting),
        }
    }

    /// Stops listening: new connections are refused from now on.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then drops the listener.
        let _ = TcpStream::connect(self.address);
        if let Some(accepting) = self.accepting.take() {
            accepting.join().unwrap();
        }
    }
}

impl Drop for Misbehaving {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves one connection's requests (keep-alive) until it closes.
fn serve(
    stream: TcpStream,
    acts: &[Act],
    key: Option<&str>,
    requests: &AtomicUsize,
    hung_up: &AtomicBool,
    bodies: &Mutex<Vec<serde_json::Value>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        let mut authorized = key.is_none();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorized = key.is_some_and(|key| value.trim() == format!("Bearer {key}")),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
        if !authorized {
            respond(&mut stream, 401, r#"{"error":{"message":"Invalid API key","type":"invalid_request_error"}}"#);
            continue;
        }
        let kept = match path.as_str() {
            "/v1/models" => respond(&mut stream, 200, r#"{"object":"list","data":[{"id":"fake","object":"model"}]}"#),
            "/v1/chat/completions" => {
                let turn = requests.fetch_add(1, Ordering::SeqCst);
                bodies.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or_default());
                let act = acts.get(turn).or(acts.last()).cloned().unwrap_or(Act::Reply("Hello."));
                play(&mut stream, act, hung_up)
            }
            _ => respond(&mut stream, 404, r#"{"detail":"Not Found"}"#),
        };
        if !kept {
            return;
        }
    }
}

/// Writes a whole response; whether the connection is still usable.
fn respond(stream: &mut TcpStream, status: u16, body: &str) -> bool {
    let head =
        format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(format!("{head}{body}").as_bytes()).is_ok()
}

/// One event of a chat stream carrying `text`.
fn event(text: &str) -> String {
    let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
    format!("data: {chunk}\n\n")
}

/// Plays `act` on a chat request; whether the connection is still usable.
fn play(stream: &mut TcpStream, act: Act, hung_up: &AtomicBool) -> bool {
    let stream_head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    match act {
        Act::Reply(text) => {
            let mut out = stream_head.to_owned();
            for word in text.split_inclusive(' ') {
                out.push_str(&event(word));
            }
            let end = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
            out.push_str(&format!("data: {end}\n\ndata: [DONE]\n\n"));
            let _ = stream.write_all(out.as_bytes());
            false
        }
        Act::Endless => {
            if stream.write_all(stream_head.as_bytes()).is_err() {
                return false;
            }
            let until = Instant::now() + Duration::from_secs(60);
            while Instant::now() < until {
                if stream.write_all(event("la ").as_bytes()).and_then(|()| stream.flush()).is_err() {
                    hung_up.store(true, Ordering::SeqCst);
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            false
        }
        Act::Status(status) => {
            respond(stream, status, r#"{"error":{"message":"the model is overloaded","type":"server_error"}}"#)
        }
        Act::Cut => {
            let _ = stream.write_all(format!("{stream_head}{}{}", event("Half "), event("a ")).as_bytes());
            false
        }
        Act::WebPage => {
            let page = "<html><body>Welcome to nginx!</body></html>";
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n", page.len());
            stream.write_all(format!("{head}{page}").as_bytes()).is_ok()
        }
        Act::FailMidway => {
            let error = r#"data: {"error":{"message":"CUDA out of memory","type":"server_error"}}"#;
            let _ = stream.write_all(format!("{stream_head}{}{error}\n\n", event("Well ")).as_bytes());
            false
        }
        Act::Silent => {
            std::thread::sleep(Duration::from_secs(30));
            false
        }
    }
}
