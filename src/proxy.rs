//! The stream through an HTTP proxy: which proxy (from `[source] proxy` or the
//! environment), and the `CONNECT` handshake that opens a tunnel through it.
//!
//! - `[source] proxy = "http://[user:pass@]host[:port]"` wins; `proxy = "none"` turns
//!   proxying off. Without the key, `HTTPS_PROXY` (for `wss://`) or `HTTP_PROXY` (for
//!   `ws://`), then `ALL_PROXY`, each upper case first, then lower case (as reqwest reads
//!   them for the targets), unless `NO_PROXY` names the stream's host.
//! - Only `http://` proxies: the tunnel carries the stream's own TLS end to end.
//! - Credentials in the proxy URL go as `Proxy-Authorization: Basic`; they are a
//!   [`Secret`], and neither [`Proxy`]'s `Display` nor any [`ProxyError`] shows them.

use std::fmt;

use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::secret::Secret;

/// A proxy the stream connects through.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The proxy's host (brackets kept around an IPv6 address), to dial and to show.
    pub host: String,
    /// Its port: as written, or 80.
    pub port: u16,
    /// `Basic <base64(user:password)>`, when the URL has credentials.
    pub authorization: Option<Secret>,
    /// Where it was set: `source.proxy` or the environment variable's name, so that a
    /// message can say which setting to change.
    pub origin: String,
}

impl fmt::Display for Proxy {
    /// `http://host:port`, or `http://***@host:port` with credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.authorization.is_some() {
            "***@"
        } else {
            ""
        };
        write!(f, "http://{auth}{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({self} from {})", self.origin)
    }
}

/// Parses a proxy URL. The message never quotes the input: it may hold a password.
pub fn parse(value: &str, origin: &str) -> Result<Proxy, String> {
    let url = reqwest::Url::parse(value.trim()).map_err(|_| {
        "not a proxy URL: write http://host:port (or http://user:password@host:port)".to_owned()
    })?;
    if url.scheme() != "http" {
        return Err(format!(
            "a `{}://` proxy is not supported for the stream: write an http:// proxy URL (the stream's TLS goes through it end to end)",
            url.scheme()
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the proxy URL has no host")?
        .to_owned();
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err("a proxy URL has no path or query: write http://host:port".to_owned());
    }
    let authorization = (!url.username().is_empty() || url.password().is_some()).then(|| {
        let decode = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_owned());
        let pair = format!(
            "{}:{}",
            decode(url.username()),
            decode(url.password().unwrap_or(""))
        );
        Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    });
    Ok(Proxy {
        host,
        port: url.port_or_known_default().unwrap_or(80),
        authorization,
        origin: origin.to_owned(),
    })
}

fn percent_decode(s: &str) -> Option<String> {
    crate::escape::unescape(s, b'%')
}

/// The environment variables that name a proxy for a URL of `scheme`, in the order
/// they are read.
pub fn env_names(scheme: &str) -> &'static [&'static str] {
    match scheme {
        "wss" | "https" => &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
        _ => &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"],
    }
}

/// Whether a `NO_PROXY` list (`example.com, .internal, 10.0.0.0/8, 127.0.0.1, *`) covers
/// `host`. A name covers itself and its subdomains; a leading `.` or `*.` is ignored; an
/// IP address or CIDR block covers the addresses in it; a `:port` suffix is ignored.
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    list.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some(hit) = ip_entry_matches(&entry, ip) {
                return hit;
            }
            let name = entry.trim_start_matches("*.").trim_start_matches('.');
            let name = match name.rsplit_once(':') {
                Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) => n,
                _ => name,
            };
            !name.is_empty()
                && (host == name
                    || host
                        .strip_suffix(name)
                        .is_some_and(|rest| rest.ends_with('.')))
        })
}

/// `Some(hit)` when `entry` is an IP address or a CIDR block (a host name never
/// matches one); `None` when it is a name.
fn ip_entry_matches(entry: &str, ip: Option<std::net::IpAddr>) -> Option<bool> {
    use std::net::IpAddr;
    let entry = entry.trim_start_matches('[');
    let (addr, bits) = match entry.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits.parse::<u32>().ok()?)),
        None => (entry.trim_end_matches(']'), None),
    };
    let net: IpAddr = addr.parse().ok()?;
    let Some(ip) = ip else {
        return Some(false);
    };
    Some(match (net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    })
}

/// Why the tunnel could not be opened. Shows the proxy as `http://[***@]host:port` only.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot connect to the proxy {proxy} (from {origin}): {source}")]
    Connect {
        proxy: String,
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the connection to the proxy {proxy} failed during CONNECT: {source}")]
    Io {
        proxy: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the proxy {proxy} (from {origin}) refused to open a tunnel: HTTP {status}{advice}")]
    Refused {
        proxy: String,
        origin: String,
        status: u16,
        advice: &'static str,
    },
    #[error("the proxy {proxy} did not answer CONNECT with HTTP")]
    NotHttp { proxy: String },
}

/// The most a CONNECT answer's head may take.
const MAX_ANSWER: usize = 16 * 1024;

/// Opens a TCP connection to `proxy` and a tunnel through it to `host:port`.
pub async fn connect(proxy: &Proxy, host: &str, port: u16) -> Result<TcpStream, ProxyError> {
    let shown = proxy.to_string();
    let addr = (
        proxy.host.trim_start_matches('[').trim_end_matches(']'),
        proxy.port,
    );
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| ProxyError::Connect {
            proxy: shown.clone(),
            origin: proxy.origin.clone(),
            source,
        })?;
    let authority = format!("{host}:{port}");
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = &proxy.authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(auth.expose());
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let io = |source| ProxyError::Io {
        proxy: shown.clone(),
        source,
    };
    tcp.write_all(request.as_bytes()).await.map_err(io)?;

    // Byte by byte: what follows the blank line belongs to the tunnel, and nothing may
    // be read past it. A head is a few hundred bytes, once per connection.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_ANSWER {
            return Err(ProxyError::NotHttp { proxy: shown });
        }
        let mut byte = [0u8; 1];
        let n = tcp.read(&mut byte).await.map_err(io)?;
        if n == 0 {
            return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        head.push(byte[0]);
    }
    let status = status_code(&head).ok_or_else(|| ProxyError::NotHttp {
        proxy: shown.clone(),
    })?;
    if !(200..300).contains(&status) {
        let advice = match (status, proxy.authorization.is_some()) {
            (407, false) => " (the proxy wants credentials: http://user:password@host:port)",
            (407, true) => " (the proxy refused the credentials in its URL)",
            _ => "",
        };
        return Err(ProxyError::Refused {
            proxy: shown,
            origin: proxy.origin.clone(),
            status,
            advice,
        });
    }
    Ok(tcp)
}

/// The status of an `HTTP/1.x NNN reason` status line.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_are_parsed_and_credentials_never_shown() {
        let p = parse("http://user:p%40ss@proxy.corp:3128", "HTTPS_PROXY").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 3128));
        // base64("user:p@ss")
        assert_eq!(
            p.authorization.as_ref().unwrap().expose(),
            "Basic dXNlcjpwQHNz"
        );
        assert_eq!(p.to_string(), "http://***@proxy.corp:3128");
        assert!(!format!("{p:?}").contains("dXNlcjpwQHNz"));

        let p = parse("http://10.0.0.1", "source.proxy").unwrap();
        assert_eq!((p.port, p.authorization.is_none()), (80, true));
        assert_eq!(parse("http://[::1]:8080/", "x").unwrap().host, "[::1]");

        for bad in ["socks5://h:1080", "https://h", "h:3128", "http://h/path"] {
            let e = parse(bad, "x").unwrap_err();
            assert!(!e.contains(bad), "{e}");
        }
        let e = parse("http://user:hunter2@h:1/x", "x").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn no_proxy_lists() {
        let list = "example.com, .internal, *.corp.net, 10.0.0.0/8, 127.0.0.1, [::1], h:8080";
        for host in [
            "example.com",
            "api.example.com",
            "x.internal",
            "internal",
            "a.corp.net",
            "10.1.2.3",
            "127.0.0.1",
            "[::1]",
            "h",
            "EXAMPLE.com",
        ] {
            assert!(no_proxy_matches(list, host), "{host}");
        }
        for host in [
            "notexample.com",
            "example.org",
            "11.0.0.1",
            "127.0.0.2",
            "[::2]",
        ] {
            assert!(!no_proxy_matches(list, host), "{host}");
        }
        assert!(no_proxy_matches("*", "anything"));
        assert!(!no_proxy_matches("", "anything"));
        assert!(!no_proxy_matches(" , ", "anything"));
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            status_code(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            Some(200)
        );
        assert_eq!(status_code(b"HTTP/1.0 407 Auth\r\n\r\n"), Some(407));
        assert_eq!(status_code(b"SSH-2.0-x\r\n\r\n"), None);
    }
}
