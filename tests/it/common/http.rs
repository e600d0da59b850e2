//! A loopback HTTP/1.1 file server for tests, with scripted faults: a
//! status code, a hang, a truncated body, or failures before success.
//! It listens on 127.0.0.1 only and stops when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Accept the request, then say nothing for this long.
    Hang(Duration),
    /// Send the headers of the full file but only this many body bytes.
    Truncate(usize),
    /// Fail with 500 this many times, then serve normally.
    FailTimes(usize),
}

pub struct Server {
    pub addr: String,
    faults: Arc<Mutex<HashMap<String, Fault>>>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serves the files under `root`.
    pub fn start(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let faults: Arc<Mutex<HashMap<String, Fault>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (root, f, r, s) = (
            root.to_owned(),
            faults.clone(),
            requests.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (root, f, r) = (root.clone(), f.clone(), r.clone());
                        std::thread::spawn(move || serve(stream, &root, &f, &r));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            addr,
            faults,
            requests,
            stop,
        }
    }

    /// Makes requests for paths ending with `suffix` fail as `fault` says.
    pub fn fault(&self, suffix: &str, fault: Fault) {
        self.faults.lock().unwrap().insert(suffix.to_owned(), fault);
    }

    /// The paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    mut stream: TcpStream,
    root: &Path,
    faults: &Mutex<HashMap<String, Fault>>,
    requests: &Mutex<Vec<String>>,
) {
    stream.set_nonblocking(false).ok();
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader
            .read_line(&mut header)
            .map(|n| n == 0)
            .unwrap_or(true)
            || header == "\r\n"
        {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    requests.lock().unwrap().push(path.clone());
    let fault = {
        let mut faults = faults.lock().unwrap();
        let key = faults.keys().find(|k| path.ends_with(k.as_str())).cloned();
        match key {
            Some(k) => match faults.get_mut(&k).unwrap() {
                Fault::FailTimes(0) => None,
                Fault::FailTimes(n) => {
                    *n -= 1;
                    Some(Fault::Status(500))
                }
                other => Some(other.clone()),
            },
            None => None,
        }
    };
    let file: PathBuf = root.join(path.trim_start_matches('/'));
    let body = std::fs::read(&file).ok();
    let respond = |stream: &mut TcpStream, status: &str, body: &[u8], length: usize| {
        let head =
            format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    };
    match (fault, body) {
        (Some(Fault::Status(code)), _) => respond(&mut stream, &format!("{code} Scripted"), b"", 0),
        (Some(Fault::Hang(d)), _) => std::thread::sleep(d),
        (Some(Fault::Truncate(n)), Some(body)) => respond(
            &mut stream,
            "200 OK",
            &body[..n.min(body.len())],
            body.len(),
        ),
        (_, Some(body)) => respond(&mut stream, "200 OK", &body, body.len()),
        (_, None) => respond(&mut stream, "404 Not Found", b"", 0),
    }
}
