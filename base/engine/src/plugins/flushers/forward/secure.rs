//! The forward protocol's shared-key handshake (HELO → PING → PONG, with the optional user
//! authentication), chunk ids for acks, and the answers read off the connection.
//!
//! SHA-512 and the random bytes come from `ring` (already in the tree through rustls).

use super::super::net::Stream;
use ring::digest::{Context, SHA512};
use ring::rand::{SecureRandom, SystemRandom};
use rmpv::Value as Mp;
use std::io::{self, Read, Write};

/// The largest answer read (an ack, HELO or PONG is well under a KiB).
const ANSWER_LIMIT: u64 = 64 * 1024;

/// The credentials of one server.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    /// `SharedKey`.
    pub(crate) shared_key: String,
    /// `Username` (empty: no user authentication).
    pub(crate) username: String,
    /// `Password`.
    pub(crate) password: String,
}

/// Why an exchange with a server failed, and whether a fresh connection to the same server
/// is worth one more try (the kept-alive one was found closed or reset by the server).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) why: String,
    pub(crate) fresh_may_help: bool,
}

impl Failure {
    pub(crate) fn new(why: impl Into<String>) -> Self {
        Self {
            why: why.into(),
            fresh_may_help: false,
        }
    }

    /// An I/O error while `doing`; a closed or reset connection may work again fresh.
    pub(crate) fn io(doing: &str, e: &io::Error) -> Self {
        use io::ErrorKind as K;
        let fresh_may_help = matches!(
            e.kind(),
            K::BrokenPipe | K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof
        );
        let what = match e.kind() {
            K::WouldBlock | K::TimedOut => "timed out".to_string(),
            K::UnexpectedEof => "the server closed the connection".to_string(),
            _ => e.to_string(),
        };
        Self {
            why: format!("{doing}: {what}"),
            fresh_may_help,
        }
    }
}

/// `N` random bytes from the system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "the system has no random bytes to give".to_string())?;
    Ok(b)
}

/// A fresh ack id: base64 of 16 random bytes, as Fluentd's out_forward makes them.
pub(crate) fn chunk_id() -> Result<String, String> {
    Ok(base64(&random_bytes::<16>()?))
}

/// Standard base64 with padding.
pub(crate) fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Lower-case hex of SHA-512 over `parts` one after another.
pub(crate) fn sha512_hex(parts: &[&[u8]]) -> String {
    let mut c = Context::new(&SHA512);
    for p in parts {
        c.update(p);
    }
    let mut out = String::with_capacity(128);
    for b in c.finish().as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Reads one msgpack value (at most [`ANSWER_LIMIT`] bytes) from `s`, within its read
/// timeout.
pub(crate) fn read_answer(s: &mut Stream, doing: &str) -> Result<Mp, Failure> {
    let mut r = Read::by_ref(s).take(ANSWER_LIMIT);
    rmpv::decode::read_value(&mut r).map_err(|e| match e {
        rmpv::decode::Error::InvalidMarkerRead(e) | rmpv::decode::Error::InvalidDataRead(e) => {
            Failure::io(doing, &e)
        }
        other => Failure::new(format!("{doing}: not msgpack: {other}")),
    })
}

/// The bytes of a `str` (valid UTF-8 or not) or a `bin`.
pub(crate) fn bytes_of(v: &Mp) -> Option<&[u8]> {
    match v {
        Mp::String(s) => Some(s.as_bytes()),
        Mp::Binary(b) => Some(b),
        _ => None,
    }
}

/// The value of `key` in map `v`.
pub(crate) fn get<'a>(v: &'a Mp, key: &str) -> Option<&'a Mp> {
    match v {
        Mp::Map(m) => m
            .iter()
            .find(|(k, _)| bytes_of(k) == Some(key.as_bytes()))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Runs the client side of the handshake on a fresh connection: reads HELO, sends PING
/// with the shared-key digest (and the user's, when `Username` is set), checks PONG (its
/// result and the server's digest). Returns whether the server keeps the connection alive.
pub(crate) fn handshake(s: &mut Stream, auth: &Auth, hostname: &str) -> Result<bool, Failure> {
    let helo = read_answer(s, "handshake: reading HELO").map_err(|mut f| {
        f.why.push_str(" (does the server have a shared key?)");
        f.fresh_may_help = false;
        f
    })?;
    let (nonce, user_salt, keepalive) = match &helo {
        Mp::Array(a) if a.len() >= 2 && bytes_of(&a[0]) == Some(b"HELO") => {
            let nonce = get(&a[1], "nonce").and_then(bytes_of).ok_or_else(|| {
                Failure::new("handshake: the HELO has no nonce (not a forward server?)")
            })?;
            let salt = get(&a[1], "auth").and_then(bytes_of).unwrap_or_default();
            let keepalive = get(&a[1], "keepalive")
                .and_then(Mp::as_bool)
                .unwrap_or(true);
            (nonce.to_vec(), salt.to_vec(), keepalive)
        }
        other => {
            let why = format!(
                "handshake: expected HELO, got {} (does the server have a shared key?)",
                short(other)
            );
            return Err(Failure::new(why));
        }
    };
    // Hex text: Fluent Bit reads the salt as a string.
    let salt: String = random_bytes::<8>()
        .map_err(Failure::new)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = auth.shared_key.as_bytes();
    let digest = sha512_hex(&[salt.as_bytes(), hostname.as_bytes(), &nonce, key]);
    let (user, user_digest) = if auth.username.is_empty() {
        (String::new(), String::new())
    } else {
        let d = sha512_hex(&[
            &user_salt,
            auth.username.as_bytes(),
            auth.password.as_bytes(),
        ]);
        (auth.username.clone(), d)
    };
    let mut ping = Vec::with_capacity(400);
    let _ = rmp::encode::write_array_len(&mut ping, 6);
    for part in ["PING", hostname, &salt, &digest, &user, &user_digest] {
        let _ = rmp::encode::write_str(&mut ping, part);
    }
    s.write_all(&ping)
        .and_then(|()| s.flush())
        .map_err(|e| Failure::io("handshake: sending PING", &e))?;
    let pong = read_answer(s, "handshake: reading PONG").map_err(|mut f| {
        if f.fresh_may_help {
            f.why.push_str(" (a wrong SharedKey?)");
            f.fresh_may_help = false;
        }
        f
    })?;
    let a = match &pong {
        Mp::Array(a) if a.len() >= 5 && bytes_of(&a[0]) == Some(b"PONG") => a,
        other => {
            let why = format!("handshake: expected PONG, got {}", short(other));
            return Err(Failure::new(why));
        }
    };
    if a[1].as_bool() != Some(true) {
        let reason = bytes_of(&a[2])
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        return Err(Failure::new(format!(
            "authentication failed: the server says {reason:?}"
        )));
    }
    let server = bytes_of(&a[3]).unwrap_or_default();
    let want = sha512_hex(&[salt.as_bytes(), server, &nonce, key]);
    if bytes_of(&a[4]) != Some(want.as_bytes()) {
        return Err(Failure::new(
            "authentication failed: the server's PONG digest does not match (its shared key differs)",
        ));
    }
    Ok(keepalive)
}

/// The start of a value's text, for errors.
pub(crate) fn short(v: &Mp) -> String {
    let t = v.to_string();
    match t.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_sha512_match_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(chunk_id().unwrap().len(), 24);
        assert_ne!(chunk_id().unwrap(), chunk_id().unwrap());
        assert_eq!(
            sha512_hex(&[b"a", b"bc"]),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }
}
