//! The avatar flags of `chat` and `serve` made into a bridge, and `workly
//! avatar send` and `workly avatar peer`: manual control of the avatar, and
//! the reference receiver as a program.
//!
//! `send` starts a bridge without a director, hands it one command, waits
//! until it is written and exits; `peer` listens like the Unity app and prints
//! one line per command it applied, in the form `send` takes.

use super::{AvatarArgs, AvatarPeerArgs, AvatarSendArgs, write_stdout};
use crate::avatar::unity::Reconnect;
use crate::avatar::{
    AvatarBridge, AvatarError, BridgeConfig, Command, DirectorConfig, FrameTap, peer, resolve, unity, vmc,
};
use std::time::Duration;

/// How long `send` waits for Unity or a VMC socket before giving up.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest `send` keeps VMC frames going while a value eases in (at Unity's
/// default transition speed of 2 that takes about 3.5 s).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The bridge the avatar flags describe, with the default director.
pub fn bridge_config(args: &AvatarArgs) -> Result<BridgeConfig, AvatarError> {
    let unity = if args.no_unity { None } else { Some(resolve(&args.unity, unity::DEFAULT_PORT)?) };
    let vmc = args.vmc.iter().map(|address| resolve(address, vmc::DEFAULT_PORT)).collect::<Result<Vec<_>, _>>()?;
    if unity.is_none() && vmc.is_empty() {
        return Err(AvatarError::NoTransport);
    }
    Ok(BridgeConfig {
        unity,
        vmc,
        fps: args.avatar_fps,
        director: Some(DirectorConfig::default()),
        model: None,
        reconnect: Reconnect::default(),
        tap: None,
    })
}

/// Starts the bridge the avatar flags of `chat` or `serve` ask for, if any:
/// `--no-unity` without `--vmc` means no avatar, and the chat goes on. `tap`
/// is told each frame written to Unity.
pub fn start_bridge(args: &AvatarArgs, tap: Option<FrameTap>) -> Result<Option<AvatarBridge>, AvatarError> {
    if args.no_unity && args.vmc.is_empty() {
        return Ok(None);
    }
    AvatarBridge::start(BridgeConfig { tap, ..bridge_config(args)? }).map(Some)
}

/// `workly avatar send COMMAND ARGS...`
pub fn run_send(args: &AvatarSendArgs) -> crate::error::Result<()> {
    let command = Command::from_words(&args.command).map_err(AvatarError::from)?;
    let config = BridgeConfig { director: None, ..bridge_config(&args.avatar)? };
    if matches!(command, Command::SetHeadPose(_) | Command::SetMouth(_)) && config.vmc.is_empty() {
        return Err(AvatarError::VmcOnly(command.name()).into());
    }
    let bridge = AvatarBridge::start(config)?;
    bridge.send(command);
    bridge.flush(SEND_TIMEOUT)?;
    // VMC receivers show what each frame says, and this process is the only
    // one sending them frames: stay until the eased value has arrived.
    let deadline = std::time::Instant::now() + SETTLE_TIMEOUT;
    while bridge.stats().iter().any(|transport| transport.moving) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// `workly avatar peer --port P`: serves until Ctrl-C.
pub fn run_peer(args: &AvatarPeerArgs) -> crate::error::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(AvatarError::Start)?;
    runtime.block_on(async {
        let address = std::net::SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| AvatarError::Listen { address: address.to_string(), source })?;
        let local =
            listener.local_addr().map_err(|source| AvatarError::Listen { address: address.to_string(), source })?;
        eprintln!("workly avatar peer: listening on {local}");
        let shutdown = async {
            // Without a signal handler the peer runs until killed, which is fine.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let counts = peer::serve(listener, shutdown, |command, _| {
            // A closed stdout ends nothing: the peer keeps serving its client.
            let _ = write_stdout(&format!("{command}\n"));
        })
        .await;
        eprintln!("workly avatar peer: {} applied, {} refused", counts.applied, counts.refused);
        Ok(())
    })
}
