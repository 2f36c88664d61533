//! What protects the front office's forms and tells who is asking (pure but
//! for drawing random values): the client's address behind trusted proxies,
//! cookies read and written, and CSRF tokens.
//!
//! CSRF: a form's `csrf` field is an HMAC-SHA-256, under the database's secret
//! (`store::front`, drawn once), of what binds it to one browser:
//! - signed in, the session's cookie value (a per-session token, never stored);
//! - anonymous (the sign-in form), a random value in the `csrf` cookie: a
//!   signed double-submit cookie. A site that makes a browser post cannot read
//!   the cookie, nor forge an HMAC for a value it would plant.
//!
//! A POST whose `csrf` field does not verify is refused (403).

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header;
use ring::hmac;

/// The session's cookie.
pub const SESSION_COOKIE: &str = "session";
/// The anonymous form's cookie.
pub const CSRF_COOKIE: &str = "csrf";

/// The client's address: the connection's peer, or, when the peer is one of
/// `trusted` proxies, the right-most address of `X-Forwarded-For` that is not
/// one of them (the left-most ones are the client's to write).
pub fn client(peer: SocketAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.ip();
    if !is_trusted(&client) {
        return client;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect();
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

/// The value of cookie `name` in a request's headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, for the whole site,
/// `Secure` when the public address is https; `None` deletes it.
pub fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(value) => format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}"),
        None => format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"),
    }
}

/// The CSRF token of forms bound to `binding` (`session:…` or `anonymous:…`).
pub fn csrf_token(secret: &[u8], binding: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::sign(&key, binding.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `token` is the CSRF token of `binding` (in constant time).
pub fn csrf_valid(secret: &[u8], binding: &str, token: &str) -> bool {
    let Some(tag) = unhex(token) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, binding.as_bytes(), &tag).is_ok()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The value of field `name` of a form body (`application/x-www-form-urlencoded`).
pub fn field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let proxy: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let forwarded = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7")]);
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client(proxy, &forwarded, &[]).to_string(), "10.0.0.5");
        assert_eq!(
            client(proxy, &forwarded, &trusted).to_string(),
            "203.0.113.7",
            "the right-most untrusted hop, not what the client wrote first"
        );
        let chain = headers(&[("x-forwarded-for", "203.0.113.7, 10.0.0.9")]);
        assert_eq!(client(proxy, &chain, &trusted).to_string(), "203.0.113.7");
        let outsider: SocketAddr = "198.51.100.1:1".parse().unwrap();
        assert_eq!(
            client(outsider, &forwarded, &trusted).to_string(),
            "198.51.100.1"
        );
    }

    #[test]
    fn cookies_are_read_and_written_with_their_attributes() {
        let h = headers(&[("cookie", "a=1; session=abc ; csrf=x")]);
        assert_eq!(cookie(&h, "session"), Some("abc"));
        assert_eq!(cookie(&h, "none"), None);
        assert_eq!(
            set_cookie("session", Some("v"), true),
            "session=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(set_cookie("session", None, false).contains("Max-Age=0"));
    }

    #[test]
    fn csrf_tokens_verify_for_their_binding_only() {
        let token = csrf_token(b"secret", "session:abc");
        assert!(csrf_valid(b"secret", "session:abc", &token));
        assert!(!csrf_valid(b"secret", "session:abd", &token));
        assert!(!csrf_valid(b"other", "session:abc", &token));
        assert!(!csrf_valid(b"secret", "session:abc", ""));
        assert!(!csrf_valid(b"secret", "session:abc", "zz"));
    }

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(
            field(b"csrf=ab&email=Marie%40Example.org", "email").as_deref(),
            Some("Marie@Example.org")
        );
        assert_eq!(field(b"email=x", "csrf"), None);
    }
}
