//! llama.cpp's RPC backend: one model spread over several machines.
//!
//! A worker ([`serve`], `workly worker`) lends this machine's CPU (or GPU)
//! to others over TCP; an engine given workers' addresses ([`connect`],
//! `--rpc`) registers each as a device of llama.cpp, which then places the
//! model's layers on them as it places them on GPUs (by their free memory),
//! computes each layer where its weights are, and passes only activations
//! between machines.
//!
//! The protocol has no authentication and no encryption: whoever reaches a
//! worker's port can run computations on it and read what it holds. A worker
//! therefore listens on loopback unless told otherwise (see the command line).
//!
//! llama-cpp-2 does not wrap the RPC backend, so its four C functions are
//! declared here; llama.cpp is built with it (`GGML_RPC=ON` in the
//! repository's Cargo configuration), and llama-cpp-sys-2 links its library.
// `unsafe_code` is denied crate-wide; these are plain C calls on C strings
// and out-parameters that live for the call, checked before each use.
#![allow(unsafe_code)]

use super::LlmError;
use llama_cpp_sys_2::{ggml_backend_dev_t, ggml_backend_reg_t};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::ffi::{CString, c_char};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

unsafe extern "C" {
    fn ggml_backend_rpc_add_server(endpoint: *const c_char) -> ggml_backend_reg_t;
    fn ggml_backend_rpc_get_device_memory(endpoint: *const c_char, device: u32, free: *mut usize, total: *mut usize);
    fn ggml_backend_rpc_start_server(
        endpoint: *const c_char,
        cache_dir: *const c_char,
        n_threads: usize,
        n_devices: usize,
        devices: *mut ggml_backend_dev_t,
    );
}

/// The port llama.cpp's own `rpc-server` listens on by default.
pub const DEFAULT_PORT: u16 = 50052;
/// How long to wait for a worker to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Workers registered with llama.cpp in this process: it keeps a device per
/// worker for the process's life, so each is added once.
static REGISTERED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// What went wrong with an RPC worker.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// A worker's address is not `host:port`.
    #[error("`{0}` is not an RPC worker address: give host:port, e.g. 192.168.1.20:50052")]
    Address(String),
    /// Nothing answers there.
    #[error("cannot reach the RPC worker at {endpoint}: {why} (is `workly worker` running there?)")]
    Unreachable {
        /// The worker.
        endpoint: String,
        /// The network's reason.
        why: String,
    },
    /// llama.cpp's backend would not take the worker.
    #[error("llama.cpp refused the RPC worker at {0} (it serves no device, or speaks another protocol version)")]
    Refused(String),
    /// The worker could not listen.
    #[error("the worker could not listen on {0} (the port is taken, or the address is not this machine's)")]
    Listen(String),
    /// The worker's tensor cache cannot be used.
    #[error("the worker's tensor cache `{dir}` cannot be used: {why}")]
    Cache {
        /// The cache folder.
        dir: String,
        /// What is wrong.
        why: String,
    },
    /// llama.cpp has no device to lend.
    #[error("llama.cpp has no CPU device to serve")]
    NoDevice,
}

impl crate::error::Classify for RpcError {
    /// Bad input for an address that is not one; a failure where the
    /// network or a worker fails.
    fn class(&self) -> crate::error::Class {
        match self {
            RpcError::Address(_) => crate::error::Class::BadInput,
            _ => crate::error::Class::Failure,
        }
    }
}

/// One worker: its memory, as it reports it, and the layers planned for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    /// The worker, `host:port`.
    pub endpoint: String,
    /// Memory it has free for the model, in bytes.
    pub free_bytes: u64,
    /// Its device's memory, in bytes.
    pub total_bytes: u64,
    /// The model's layers it is to hold ([`plan`]).
    pub layers: u32,
}

/// Checks that `endpoint` is `host:port` and that a worker accepts
/// connections there (llama.cpp aborts the process on a worker it cannot
/// reach, so it is never handed one unchecked).
fn reach(endpoint: &str) -> Result<SocketAddr, RpcError> {
    let address = endpoint
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .filter(|_| endpoint.rsplit_once(':').is_some_and(|(host, _)| !host.is_empty()))
        .ok_or_else(|| RpcError::Address(endpoint.to_owned()))?;
    TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
        .map_err(|error| RpcError::Unreachable { endpoint: endpoint.to_owned(), why: error.to_string() })?;
    Ok(address)
}

/// A C string of `endpoint` (checked by [`reach`], so without NUL bytes).
fn c_endpoint(endpoint: &str) -> Result<CString, RpcError> {
    CString::new(endpoint).map_err(|_| RpcError::Address(endpoint.to_owned()))
}

/// Registers each worker of `endpoints` as a llama.cpp device (once per
/// process): a model loaded afterwards with its layers offloaded is spread
/// over them. Call it after llama.cpp's backend is initialised.
pub fn connect(endpoints: &[String]) -> Result<(), RpcError> {
    let mut registered = REGISTERED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let registered = registered.get_or_insert_with(HashSet::new);
    for endpoint in endpoints {
        if registered.contains(endpoint) {
            continue;
        }
        reach(endpoint)?;
        let name = c_endpoint(endpoint)?;
        // SAFETY: `name` is a valid C string for the call; llama.cpp copies it.
        let reg = unsafe { ggml_backend_rpc_add_server(name.as_ptr()) };
        if reg.is_null() {
            return Err(RpcError::Refused(endpoint.clone()));
        }
        // SAFETY: `reg` is the non-null registry llama.cpp just made for the worker.
        unsafe { llama_cpp_sys_2::ggml_backend_register(reg) };
        registered.insert(endpoint.clone());
    }
    Ok(())
}

/// Each worker's memory, asked of it (no layers planned yet).
pub fn memory(endpoints: &[String]) -> Result<Vec<Worker>, RpcError> {
    endpoints
        .iter()
        .map(|endpoint| {
            reach(endpoint)?;
            let name = c_endpoint(endpoint)?;
            let (mut free, mut total) = (0usize, 0usize);
            // SAFETY: valid C string and two out-parameters that outlive the call.
            unsafe { ggml_backend_rpc_get_device_memory(name.as_ptr(), 0, &mut free, &mut total) };
            Ok(Worker { endpoint: endpoint.clone(), free_bytes: free as u64, total_bytes: total as u64, layers: 0 })
        })
        .collect()
}

/// Serves this machine's CPU to engines elsewhere at `endpoint` (`host:port`)
/// with `threads` threads, keeping the tensors it is sent in `cache` (so a
/// model loaded again is not sent again). Returns only if it cannot listen.
pub fn serve(endpoint: &str, threads: usize, cache: Option<&Path>, llama_logs: bool) -> Result<(), LlmError> {
    super::llama::backend(llama_logs)?;
    let name = c_endpoint(endpoint).map_err(LlmError::from)?;
    let cache = cache
        .map(|dir| {
            let failed = |why: String| RpcError::Cache { dir: dir.display().to_string(), why };
            std::fs::create_dir_all(dir).map_err(|error| failed(error.to_string()))?;
            CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| failed("a NUL byte in the path".to_owned()))
        })
        .transpose()?;
    // SAFETY: llama.cpp's backend is initialised; the CPU device it returns
    // lives for the process.
    let cpu = unsafe { llama_cpp_sys_2::ggml_backend_dev_by_type(llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_CPU) };
    if cpu.is_null() {
        return Err(RpcError::NoDevice.into());
    }
    let mut devices = [cpu];
    let cache_ptr = cache.as_ref().map_or(std::ptr::null(), |cache| cache.as_ptr());
    // SAFETY: valid C strings and a one-device array, all outliving the call,
    // which serves clients until the process ends.
    unsafe { ggml_backend_rpc_start_server(name.as_ptr(), cache_ptr, threads, devices.len(), devices.as_mut_ptr()) };
    Err(RpcError::Listen(endpoint.to_owned()).into())
}

/// Sets how many of `layers` layers llama.cpp puts on each worker: as it
/// splits layers over devices when told nothing else, layer `i` goes to the
/// first device whose cumulative share of the free memory exceeds `i / layers`.
pub fn plan(workers: &mut [Worker], layers: u32) {
    let total: f64 = workers.iter().map(|worker| worker.free_bytes as f64).sum();
    let count = workers.len();
    let bounds: Vec<f64> = workers
        .iter()
        .scan(0.0, |cumulative, worker| {
            *cumulative += if total > 0.0 { worker.free_bytes as f64 / total } else { 1.0 / count as f64 };
            Some(*cumulative)
        })
        .collect();
    workers.iter_mut().for_each(|worker| worker.layers = 0);
    for layer in 0..layers {
        let at = f64::from(layer) / f64::from(layers);
        let device = bounds.iter().position(|bound| *bound > at).unwrap_or(count.saturating_sub(1));
        if let Some(worker) = workers.get_mut(device) {
            worker.layers += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(free_gib: &[u64], layers: u32) -> Vec<u32> {
        let mut workers: Vec<Worker> = free_gib
            .iter()
            .map(|free| Worker { endpoint: "h:1".into(), free_bytes: free << 30, total_bytes: 64 << 30, layers: 9 })
            .collect();
        plan(&mut workers, layers);
        workers.iter().map(|worker| worker.layers).collect()
    }

    #[test]
    fn layers_follow_free_memory() {
        assert_eq!(planned(&[8, 8], 30), [15, 15]);
        assert_eq!(planned(&[24, 8], 32), [24, 8]);
        assert_eq!(planned(&[1, 1, 1], 10), [4, 3, 3]);
        assert_eq!(planned(&[0, 0], 4), [2, 2]);
        assert!(planned(&[], 4).is_empty());
    }

    #[test]
    fn a_bad_address_or_no_worker_is_said_in_one_line() {
        assert!(matches!(connect(&["no-port".into()]), Err(RpcError::Address(_))));
        assert!(matches!(connect(&[":50052".into()]), Err(RpcError::Address(_))));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let error = connect(&[format!("127.0.0.1:{port}")]).unwrap_err();
        assert!(matches!(error, RpcError::Unreachable { .. }), "{error}");
        assert!(!error.to_string().contains('\n'));
    }
}
